"""resources/: the icon files match their SVG source, the desktop entry and AppStream metadata
validate with the freedesktop tools, LICENSE is the Apache licence, and a built wheel carries
everything the app reads at run time. CI installs librsvg2-bin, appstream and desktop-file-utils."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

from resources import make_icons

ROOT = Path(__file__).resolve().parents[2]
APP_ID = "io.github.hearth_chat.Hearth"


def _tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is missing (.ci/run installs it)"
    return found


def test_icon_files_are_made_from_the_svg() -> None:
    _tool("rsvg-convert")
    result = subprocess.run([sys.executable, "resources/make_icons.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_ico_and_icns_hold_every_size() -> None:
    ico = (ROOT / "resources" / "hearth.ico").read_bytes()
    reserved, kind, count = struct.unpack("<HHH", ico[:6])
    assert (reserved, kind, count) == (0, 1, len(make_icons.ICO_SIZES))
    sizes = []
    for i in range(count):
        w, _h, _c, _r, _planes, bpp, length, offset = struct.unpack("<BBBBHHII", ico[6 + 16 * i : 22 + 16 * i])
        png = ico[offset : offset + length]
        assert make_icons.png_size(png)[0] == (w or 256) and bpp == 32
        sizes.append(w or 256)
    assert sizes == sorted(make_icons.ICO_SIZES)
    icns = (ROOT / "resources" / "hearth.icns").read_bytes()
    assert icns[:4] == b"icns" and struct.unpack(">I", icns[4:8])[0] == len(icns)
    pos, kinds = 8, {}
    while pos < len(icns):
        kind, length = icns[pos : pos + 4], struct.unpack(">I", icns[pos + 4 : pos + 8])[0]
        kinds[kind] = make_icons.png_size(icns[pos + 8 : pos + length])[0]
        pos += length
    assert kinds == dict(make_icons.ICNS_TYPES)
    assert kinds[b"ic10"] == 1024  # the 512@2x Retina size


def test_desktop_entry_and_appstream_metadata_validate() -> None:
    desktop = ROOT / "resources" / "linux" / f"{APP_ID}.desktop"
    result = subprocess.run([_tool("desktop-file-validate"), str(desktop)], capture_output=True, text=True)
    assert result.returncode == 0 and "error" not in result.stdout.lower(), result.stdout
    meta = ROOT / "resources" / "linux" / f"{APP_ID}.metainfo.xml"
    result = subprocess.run([_tool("appstreamcli"), "validate", "--no-net", str(meta)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f'<launchable type="desktop-id">{APP_ID}.desktop</launchable>' in meta.read_text()
    from app import __version__

    assert f'<release version="{__version__}"' in meta.read_text()  # a release entry for this version


def test_license_is_apache_2() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    licenses = ROOT / "app" / "resources" / "licenses"
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in (licenses / "LGPL-3.0.txt").read_text()
    assert "MIT License" in (licenses / "llama.cpp-MIT.txt").read_text()


def test_a_built_wheel_carries_what_the_app_reads_at_run_time(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                             "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("hearth_chat-*.whl")
    from app import __version__

    assert wheel.name.startswith(f"hearth_chat-{__version__}-")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        "app/resources/catalog.json",
        "app/resources/THIRD_PARTY_NOTICES.md",
        "app/resources/licenses/LGPL-3.0.txt",
        "app/resources/licenses/llama.cpp-MIT.txt",
        "app/core/llama_builds.py",
        "app/core/llama_probe.py",
        *(f"app/resources/icons/hearth-{s}.png" for s in make_icons.RUNTIME_SIZES),
    }
    assert wanted <= names, sorted(wanted - names)
