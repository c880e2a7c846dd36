"""Linux packages of a frozen Hearth bundle: a .deb, a portable .tar.gz and an AppDir.

The .deb installs the bundle under /opt/hearth, links /usr/bin/hearth to it, and puts the desktop
entry, the hicolor icons and the AppStream metadata where desktops look. Its Depends are worked
out the way dpkg-shlibdeps would: every library that a bundled ELF file needs from the system
(ldd), mapped to its Debian package (dpkg -S). User data (~/.local/share/Hearth and the chosen
models folder) is never part of the package: removing it leaves chats and models alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = ROOT / "resources"
APP_ID = "io.github.hearth_chat.Hearth"
PREFIX = Path("opt") / "hearth"
MAINTAINER = "Hearth developers <hearth@users.noreply.github.com>"
# Libraries that every Debian/Ubuntu system has (or that the bundle must never pin).
ESSENTIAL = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libzstd1"}
# dlopen()ed at run time, so ldd cannot see them: Qt's xcb plugin asks for libxcb-cursor.
ALWAYS = ["libxcb-cursor0", "libxkbcommon-x11-0", "libegl1", "libgl1", "libfontconfig1"]
RECOMMENDS = ["libvulkan1", "mesa-vulkan-drivers", "xdg-desktop-portal"]


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def system_libraries(bundle: Path) -> tuple[set[str], set[str]]:
    """(paths of system libraries the bundle's ELF files need, sonames that are not found)."""
    env = dict(os.environ, LD_LIBRARY_PATH=str(bundle / "_internal"))
    needed: set[str] = set()
    missing: set[str] = set()
    elves = [p for p in bundle.rglob("*") if p.is_file() and not p.is_symlink() and _is_elf(p)]
    builds = bundle / "builds"
    for elf in elves:
        out = subprocess.run(["ldd", str(elf)], capture_output=True, text=True, env=env, check=False).stdout
        for line in out.splitlines():
            name, _, where = line.strip().partition("=>")
            where = where.strip().split(" (")[0].strip()
            if "not found" in where:
                # GPU builds may need a driver library the build machine lacks (libcuda.so.1).
                if not (builds in elf.parents and name.strip().startswith(("libcuda", "libnvidia"))):
                    missing.add(name.strip())
            elif where.startswith("/") and not Path(where).resolve().is_relative_to(bundle.resolve()):
                needed.add(where)
    return needed, missing


def debian_packages(paths: set[str]) -> list[str]:
    """The Debian packages owning `paths` (dpkg -S), without the essential ones."""
    if not paths:
        return []
    resolved = sorted({str(Path(p).resolve()) for p in paths} | paths)
    out = subprocess.run(["dpkg", "-S", *resolved], capture_output=True, text=True, check=False).stdout
    packages = set()
    for line in out.splitlines():
        owner = line.split(":", 1)[0]
        for pkg in owner.split(","):
            pkg = pkg.strip()
            if pkg and not pkg.startswith("diversion by"):
                packages.add(pkg.split(":")[0])
    return sorted(packages - ESSENTIAL)


def depends(bundle: Path) -> list[str]:
    needed, missing = system_libraries(bundle)
    ignore = {m for m in missing if m.startswith(("libgtk-3", "libgdk-3", "libvulkan"))}
    if missing - ignore:
        raise SystemExit("package: the bundle needs libraries this machine lacks: " + ", ".join(sorted(missing)))
    found = debian_packages(needed)
    return sorted((set(found) | set(ALWAYS)) - set(RECOMMENDS))


def _copy_desktop_files(root: Path, exec_name: str = "hearth") -> None:
    apps = root / "usr" / "share" / "applications"
    apps.mkdir(parents=True, exist_ok=True)
    shutil.copy2(RESOURCES / "linux" / f"{APP_ID}.desktop", apps / f"{APP_ID}.desktop")
    meta = root / "usr" / "share" / "metainfo"
    meta.mkdir(parents=True, exist_ok=True)
    shutil.copy2(RESOURCES / "linux" / f"{APP_ID}.metainfo.xml", meta / f"{APP_ID}.metainfo.xml")
    shutil.copytree(RESOURCES / "icons" / "hicolor", root / "usr" / "share" / "icons" / "hicolor", dirs_exist_ok=True)


def deb(bundle: Path, dist: Path, version: str, variant: str) -> Path:
    stage = dist.parent / "build" / f"deb-{variant}"
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree(bundle, stage / PREFIX, symlinks=True)
    (stage / "usr" / "bin").mkdir(parents=True)
    (stage / "usr" / "bin" / "hearth").symlink_to(Path("/") / PREFIX / "hearth")
    _copy_desktop_files(stage)
    doc = stage / "usr" / "share" / "doc" / "hearth"
    doc.mkdir(parents=True)
    shutil.copy2(ROOT / "LICENSE", doc / "copyright")
    size_kb = sum(p.stat().st_size for p in stage.rglob("*") if p.is_file() and not p.is_symlink()) // 1024
    control = stage / "DEBIAN" / "control"
    control.parent.mkdir()
    description = (
        "Offline chat with local language models\n"
        " Hearth is a desktop chat app for language models that run on this computer\n"
        " (gpt-oss and other GGUF models, through llama.cpp). It uses an NVIDIA or\n"
        " Vulkan GPU when there is one and the CPU otherwise."
    )
    fields = {
        "Package": "hearth",
        "Version": version,
        "Architecture": "amd64",
        "Maintainer": MAINTAINER,
        "Installed-Size": str(size_kb),
        "Depends": ", ".join(depends(bundle)),
        "Recommends": ", ".join(RECOMMENDS),
        "Section": "utils",
        "Priority": "optional",
        "Homepage": "https://github.com/hearth-chat/hearth",
        "Description": description,
    }
    control.write_text("".join(f"{k}: {v}\n" for k, v in fields.items()), encoding="utf-8")
    out = dist / f"hearth_{version}_{variant}_amd64.deb"
    # fakeroot: files owned by root in the package whoever builds it; xz like Debian's own packages.
    subprocess.run(
        ["fakeroot", "dpkg-deb", "-Zxz", "--build", str(stage), str(out)], check=True, stdout=subprocess.DEVNULL
    )
    print(f"package: {out.name} ({mb(out.stat().st_size)}), Depends: {fields['Depends']}")
    return out


def tarball(bundle: Path, dist: Path, version: str, variant: str) -> Path:
    out = dist / f"hearth-{version}-linux-x86_64-{variant}.tar.gz"
    folder = f"hearth-{version}"
    with tarfile.open(out, "w:gz", compresslevel=9) as tar:
        tar.add(bundle, arcname=folder)
        readme = RESOURCES / "linux" / "PORTABLE.txt"
        tar.add(readme, arcname=f"{folder}/README.txt")
    print(f"package: {out.name} ({mb(out.stat().st_size)})")
    return out


APPRUN = """#!/bin/sh
# AppImage entry point: run the bundled Hearth with the AppImage's own folder as its home.
HERE="$(dirname "$(readlink -f "$0")")"
exec "$HERE/usr/lib/hearth/hearth" "$@"
"""


def appdir(bundle: Path, target: Path) -> Path:
    """An AppDir (appimagetool's input): AppRun, the desktop entry and icon at the top."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(bundle, target / "usr" / "lib" / "hearth", symlinks=True)
    _copy_desktop_files(target)
    shutil.copy2(RESOURCES / "linux" / f"{APP_ID}.desktop", target / f"{APP_ID}.desktop")
    shutil.copy2(RESOURCES / "icons" / "hicolor" / "256x256" / "apps" / "hearth.png", target / "hearth.png")
    (target / ".DirIcon").symlink_to("hearth.png")
    apprun = target / "AppRun"
    apprun.write_text(APPRUN, encoding="utf-8")
    apprun.chmod(0o755)
    print(f"package: AppDir {target}")
    return target


def appimage(appdir_path: Path, dist: Path, version: str, variant: str, tool: str) -> Path:
    out = dist / f"Hearth-{version}-{variant}-x86_64.AppImage"
    env = dict(os.environ, ARCH="x86_64", VERSION=version)
    subprocess.run([tool, "--no-appstream", str(appdir_path), str(out)], check=True, env=env)
    return out


def squashfs_size(appdir_path: Path) -> int:
    """The size an AppImage's payload would have (squashfs, zstd as appimagetool does): for reports."""
    out = appdir_path.with_suffix(".squashfs")
    out.unlink(missing_ok=True)
    subprocess.run(
        ["mksquashfs", str(appdir_path), str(out), "-comp", "zstd", "-noappend", "-quiet", "-all-root"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    size = out.stat().st_size
    out.unlink()
    return size
