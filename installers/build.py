"""Build Hearth's installers for this system into dist/.

    python installers/build.py [--variant cpu|vulkan|cuda|metal] [--builds DIR] [--skip-freeze]

1. PyInstaller freezes the app (installers/hearth.spec) into build/pyinstaller/dist/hearth: a
   onedir bundle whose llama_cpp/lib is the CPU build (on macOS the Metal one pip makes).
2. The variant's GPU build of llama.cpp is copied beside the executable as builds/<name>
   (vulkan: builds/vulkan; cuda: builds/cuda and, when present, builds/vulkan), from --builds
   (default: $HEARTH_LLAMA_BUILDS, else build/llama; made by installers/build_llama.py).
   app.core.llama_builds chooses among them at run time.
3. Licences and third-party notices are added (installers/notices.py).
4. The host's packages are made:
   Linux   dist/hearth_<v>_<variant>_amd64.deb, dist/hearth-<v>-linux-x86_64-<variant>.tar.gz and
           the AppDir build/Hearth-<variant>.AppDir (appimagetool, run by the release workflow,
           turns it into the .AppImage; --appimagetool PATH does it here)
   Windows dist/Hearth-<v>-windows-x64-<variant>-setup.exe (NSIS, installers/windows/hearth.nsi)
   macOS   dist/Hearth-<v>-macos-arm64.dmg holding Hearth.app (signed and notarised when
           APPLE_SIGN_IDENTITY / APPLE_NOTARY_PROFILE are set; skipped, and said so, otherwise)
Each step prints what it wrote and its size; the last line lists the artefacts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from installers import notices  # noqa: E402

VARIANT_BUILDS = {"cpu": (), "vulkan": ("vulkan",), "cuda": ("cuda", "vulkan"), "metal": ()}
OPTIONAL_BUILDS = {"cuda": ("vulkan",)}  # carried along when present, not required


def version() -> str:
    from app import __version__

    return __version__


def mb(n: int | float) -> str:
    return f"{n / 1e6:.1f} MB"


def tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def freeze(work: Path) -> Path:
    """PyInstaller onedir bundle (or Hearth.app on macOS); returns the bundle folder."""
    dist = work / "dist"
    env = dict(os.environ, HEARTH_ROOT=str(ROOT))
    cmd = [
        sys.executable,
        "-m",
        "PyInstaller",
        str(ROOT / "installers" / "hearth.spec"),
        "--noconfirm",
        "--distpath",
        str(dist),
        "--workpath",
        str(work / "work"),
        "--log-level",
        "WARN",
    ]
    started = time.monotonic()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    bundle = dist / ("Hearth.app" if sys.platform == "darwin" else "hearth")
    print(f"build: froze the app in {time.monotonic() - started:.0f} s: {bundle} ({mb(tree_size(bundle))})")
    return bundle


def app_dir(bundle: Path) -> Path:
    """The folder holding the executable (Contents/MacOS in a .app)."""
    return bundle / "Contents" / "MacOS" if bundle.suffix == ".app" else bundle


def add_builds(bundle: Path, variant: str, source: Path) -> list[str]:
    target = app_dir(bundle) / "builds"
    shutil.rmtree(target, ignore_errors=True)
    added = []
    for name in VARIANT_BUILDS[variant]:
        folder = source / name
        if not any(folder.glob("*llama*")):
            if name in OPTIONAL_BUILDS.get(variant, ()):
                continue
            raise SystemExit(
                f"build: the {name} build of llama.cpp is missing in {folder} "
                f"(make it with installers/build_llama.py --variant {name} --out {folder})"
            )
        shutil.copytree(folder, target / name, symlinks=True)
        added.append(name)
        print(f"build: added builds/{name} ({mb(tree_size(target / name))})")
    return added


def add_notices(bundle: Path) -> None:
    out = bundle / "Contents" / "Resources" if bundle.suffix == ".app" else bundle
    written = notices.write_notices(out)
    print(f"build: {written.relative_to(bundle)} and licenses/ ({len(list((out / 'licenses').rglob('*')))} files)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", choices=sorted(VARIANT_BUILDS), default="metal" if sys.platform == "darwin" else "cpu")
    p.add_argument("--builds", type=Path, help="folder with one subfolder per llama.cpp build (vulkan/, cuda/)")
    p.add_argument("--dist", type=Path, default=ROOT / "dist")
    p.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller")
    p.add_argument("--skip-freeze", action="store_true", help="reuse the last frozen bundle in --work")
    p.add_argument("--appimagetool", help="Linux: turn the AppDir into an .AppImage with this appimagetool")
    p.add_argument("--version-override", help="package version (tests: an 'older' install)")
    p.add_argument("--only", help="Linux: a comma-separated subset of deb,tar,appdir (default: all)")
    args = p.parse_args(argv)
    builds = args.builds or Path(os.environ.get("HEARTH_LLAMA_BUILDS") or ROOT / "build" / "llama")
    ver = args.version_override or version()
    args.dist.mkdir(parents=True, exist_ok=True)

    if args.skip_freeze:
        bundle = args.work / "dist" / ("Hearth.app" if sys.platform == "darwin" else "hearth")
        if not bundle.exists():
            raise SystemExit(f"build: --skip-freeze, but there is no bundle at {bundle}")
    else:
        bundle = freeze(args.work)
    add_builds(bundle, args.variant, builds)
    add_notices(bundle)
    print(f"build: bundle ready, {mb(tree_size(bundle))} on disk")

    artefacts: list[Path] = []
    if sys.platform.startswith("linux"):
        from installers.linux import package

        wanted = set((args.only or "deb,tar,appdir").split(","))
        if "deb" in wanted:
            artefacts.append(package.deb(bundle, args.dist, ver, args.variant))
        if "tar" in wanted:
            artefacts.append(package.tarball(bundle, args.dist, ver, args.variant))
        if "appdir" in wanted:
            appdir = package.appdir(bundle, ROOT / "build" / f"Hearth-{args.variant}.AppDir")
            if args.appimagetool:
                artefacts.append(package.appimage(appdir, args.dist, ver, args.variant, args.appimagetool))
    elif sys.platform == "win32":
        from installers.windows import nsis

        artefacts.append(nsis.build_installer(bundle, args.dist, ver, args.variant))
    elif sys.platform == "darwin":
        from installers.macos import dmg

        artefacts.append(dmg.build_dmg(bundle, args.dist, ver))
    for a in artefacts:
        print(f"build: {a.name}: {mb(tree_size(a))}")
    print("build: artefacts: " + ", ".join(f"{a.name} ({mb(tree_size(a))})" for a in artefacts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
