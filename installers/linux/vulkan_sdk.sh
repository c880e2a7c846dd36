#!/usr/bin/env bash
# Vulkan build prerequisites on Debian bookworm (the build machine and CI):
#   bookworm's glslc, glslang-tools and mesa-vulkan-drivers (lavapipe, a software Vulkan device
#   for tests), plus the headers of trixie's libvulkan-dev 1.4.x and spirv-headers, extracted with
#   dpkg-deb -x into PREFIX (bookworm's 1.3.239 headers lack vk::LayerSettingEXT, which the
#   llama.cpp vendored by llama-cpp-python 0.3.36 uses). Nothing from trixie is installed.
# Usage: installers/linux/vulkan_sdk.sh PREFIX   -> PREFIX/usr/include/vulkan/... ; exits non-zero on failure.
set -euo pipefail
prefix=${1:?usage: vulkan_sdk.sh PREFIX}
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends glslc glslang-tools mesa-vulkan-drivers libvulkan1 libvulkan-dev >/dev/null
if [ -f "$prefix/usr/include/vulkan/vulkan.hpp" ] && grep -q LayerSettingEXT "$prefix/usr/include/vulkan/vulkan_structs.hpp"; then
  echo "vulkan_sdk: headers already in $prefix"; exit 0
fi
apt_dir=$(mktemp -d)
trap 'rm -rf "$apt_dir"' EXIT
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
echo "deb http://deb.debian.org/debian trixie main" > "$apt_dir/sources.list"
opts=(-o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache" -o APT::Get::List-Cleanup=0)
apt-get "${opts[@]}" update -qq
(cd "$apt_dir/debs" && apt-get "${opts[@]}" download libvulkan-dev spirv-headers)
mkdir -p "$prefix"
for deb in "$apt_dir"/debs/*.deb; do dpkg-deb -x "$deb" "$prefix"; done
grep -q LayerSettingEXT "$prefix/usr/include/vulkan/vulkan_structs.hpp"
echo "vulkan_sdk: trixie Vulkan headers in $prefix/usr/include ($(ls "$apt_dir"/debs))"
