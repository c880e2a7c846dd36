#!/usr/bin/env bash
# One prepared device check for a machine with an NVIDIA GPU, in well under 10 minutes:
# build the CUDA variant of llama.cpp (the source llama-cpp-python 0.3.36 vendors: the same code
# the bundle ships) together with llama-bench, load a model with every layer on the GPU through
# Hearth's own path (llama_builds.choose_build -> child_env -> a child process), and print its
# generation tokens/s next to llama-bench's from the same build, after a check that a restored chat
# continues exactly on the GPU (bench/restore_exactness.py). The last line is the figure.
#
# Here (with network), once:   bash bench/gpu_check.sh --prepare
#   puts the llama-cpp-python sdist and the few wheels the device lacks into .gpu-check/
#   (git-ignored through .git/info/exclude) and copies the synthetic gpt-oss-20b generator.
# On the GPU machine:          bash bench/gpu_check.sh [MODEL.gguf]
#   without MODEL it writes the full-size synthetic gpt-oss-20b (random weights, 12 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
PREP=.gpu-check
WORK=${GPU_CHECK_WORK:-/tmp/hearth-gpu-check}
ARCH=${CUDA_ARCH:-90}   # H100/H200; 89 for Ada (RTX 40xx), 86 for Ampere (RTX 30xx)
JOBS=$(nproc)
T0=$(date +%s)
say() { echo "gpu_check: $* ($(( $(date +%s) - T0 )) s)"; }

if [ "${1:-}" = "--prepare" ]; then
  mkdir -p "$PREP"
  grep -qx "/$PREP/" .git/info/exclude 2>/dev/null || echo "/$PREP/" >> "$(git rev-parse --git-path info/exclude)"
  python -m pip download --no-deps --no-binary :all: -d "$PREP" llama-cpp-python==0.3.36
  python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform any -d "$PREP/wheels" platformdirs diskcache gguf
  cp ../shared/tools/make_gptoss20b_synthetic.py "$PREP/" 2>/dev/null || echo "gpu_check: no synthetic model generator found (pass a MODEL then)"
  du -sh "$PREP"
  exit 0
fi

command -v nvcc >/dev/null || { echo "gpu_check: nvcc (the CUDA toolkit) is not installed" >&2; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
PY=${PYTHON:-python3}
mkdir -p "$WORK"
if ls "$PREP"/wheels/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --target "$WORK/site" "$PREP"/wheels/*.whl
fi
SDIST=$(ls "$PREP"/llama_cpp_python-0.3.36.tar.gz 2>/dev/null || true)
[ -n "$SDIST" ] || { echo "gpu_check: no sdist in $PREP: run bash bench/gpu_check.sh --prepare first" >&2; exit 1; }
rm -rf "$WORK/src" && mkdir -p "$WORK/src" && tar xzf "$SDIST" -C "$WORK/src" --strip-components=1
say "sources unpacked"

cmake -S "$WORK/src/vendor/llama.cpp" -B "$WORK/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=ON \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DLLAMA_BUILD_TOOLS=ON >"$WORK/cmake.log"
cmake --build "$WORK/build" --target llama llama-bench -j "$JOBS" >"$WORK/build.log" \
  || { tail -40 "$WORK/build.log"; exit 1; }
say "CUDA build of llama.cpp and llama-bench built"
rm -rf "$WORK/builds" && mkdir -p "$WORK/builds/cuda"
find "$WORK/build" -name "lib*.so*" -exec cp -P {} "$WORK/builds/cuda/" \;
ls "$WORK/builds/cuda"

MODEL=${1:-}
if [ -z "$MODEL" ]; then
  MODEL="$WORK/gpt-oss-20b-synthetic.gguf"
  [ -f "$MODEL" ] || PYTHONPATH="$WORK/site" $PY "$PREP/make_gptoss20b_synthetic.py" "$MODEL"
  say "model ready: $MODEL"
fi
# llama_cpp's Python bindings from the same sdist (pure Python), the libraries from builds/cuda.
export PYTHONPATH="$WORK/src:$WORK/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Restore exactness on the GPU (issue 14): a chat restored from its saved KV state, every layer on
# the GPU with flash attention, must continue token for token as the live one (5 prompt pairs).
LLAMA_CPP_LIB_PATH="$WORK/builds/cuda" timeout 300 $PY bench/restore_exactness.py --model "$MODEL" \
  --gpu-layers 99 --flash on 2>&1 | grep -a "restored\|restore_exact\|gpu_layers" || echo "gpu_check: the restore check failed"
say "restore check done"
$PY bench/gpu_check.py --builds "$WORK/builds" --model "$MODEL" --llama-bench "$WORK/build/bin/llama-bench" --tokens 128
