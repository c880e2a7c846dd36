"""Compile installers/windows/hearth.nsi with makensis (NSIS 3; on Linux Debian's `nsis`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "hearth.nsi"


def makensis() -> str:
    found = shutil.which("makensis")
    if found is None:
        raise SystemExit("nsis: makensis is not installed (Windows: choco install nsis; Debian: apt install nsis)")
    return found


def compile_script(payload: Path, out: Path, version: str) -> Path:
    """Build the installer for the frozen app in `payload` (a folder holding hearth.exe)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    # -WX: a warning fails the build. NSIS 3 takes the dash form of its options on every system.
    cmd = [makensis(), "-V2", "-WX", f"-DVERSION={version}", f"-DPAYLOAD={payload}", f"-DOUTFILE={out}", str(SCRIPT)]
    subprocess.run(cmd, check=True, cwd=HERE)
    return out


def build_installer(bundle: Path, dist: Path, version: str, variant: str) -> Path:
    return compile_script(bundle, dist / f"Hearth-{version}-windows-x64-{variant}-setup.exe", version)
