"""Make every icon file from resources/hearth.svg: PNG sizes, hearth.ico, hearth.icns.

    python resources/make_icons.py [--check]

The SVG is rasterised by librsvg's rsvg-convert (Debian: librsvg2-bin; macOS: brew librsvg), a
real SVG renderer; the .ico (Windows: the exe, the installer, the Start menu) and the .icns
(macOS) are containers of those PNGs, written here byte by byte. Outputs:
  resources/icons/hicolor/NxN/apps/hearth.png   the Linux hicolor theme (the .deb installs these)
  resources/hearth.ico, resources/hearth.icns   the Windows and macOS bundles
  app/resources/icons/hearth-N.png              what the window loads at run time (in the wheel)
--check regenerates into a temporary folder and exits 1 when a committed file differs.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SOURCE = HERE / "hearth.svg"
HICOLOR_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
RUNTIME_SIZES = (16, 32, 64, 128, 256)
# ICNS element types holding PNG data, and the pixel size of each.
ICNS_TYPES = (
    (b"icp4", 16), (b"icp5", 32), (b"icp6", 64), (b"ic07", 128), (b"ic08", 256), (b"ic09", 512),
    (b"ic10", 1024), (b"ic11", 32), (b"ic12", 64), (b"ic13", 256), (b"ic14", 512),
)  # fmt: skip


def rasterise(size: int, out: Path) -> bytes:
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["rsvg-convert", "-w", str(size), "-h", str(size), str(SOURCE), "-o", str(out)], check=True)
    data = out.read_bytes()
    width, height = png_size(data)
    if (width, height) != (size, size):
        raise SystemExit(f"make_icons: rsvg-convert made {width}x{height}, not {size}x{size}")
    return data


def png_size(data: bytes) -> tuple[int, int]:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def ico(pngs: dict[int, bytes]) -> bytes:
    """A Windows icon whose images are PNG-compressed (Windows Vista and later, NSIS 3)."""
    sizes = sorted(pngs)
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = 6 + 16 * len(sizes)
    entries, blobs = b"", b""
    for s in sizes:
        data = pngs[s]
        dim = 0 if s >= 256 else s  # 0 means 256 in an ICONDIRENTRY
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(data), offset)
        offset += len(data)
        blobs += data
    return header + entries + blobs


def icns(pngs: dict[int, bytes]) -> bytes:
    body = b"".join(kind + struct.pack(">I", 8 + len(pngs[size])) + pngs[size] for kind, size in ICNS_TYPES)
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def generate(root: Path) -> list[Path]:
    tmp = Path(tempfile.mkdtemp(prefix="hearth-icons-"))
    try:
        pngs = {s: rasterise(s, tmp / f"{s}.png") for s in sorted({*HICOLOR_SIZES, *ICO_SIZES, 1024})}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    written: dict[Path, bytes] = {}
    for s in HICOLOR_SIZES:
        written[root / "resources" / "icons" / "hicolor" / f"{s}x{s}" / "apps" / "hearth.png"] = pngs[s]
    written[root / "resources" / "icons" / "hicolor" / "scalable" / "apps" / "hearth.svg"] = SOURCE.read_bytes()
    for s in RUNTIME_SIZES:
        written[root / "app" / "resources" / "icons" / f"hearth-{s}.png"] = pngs[s]
    written[root / "resources" / "hearth.ico"] = ico({s: pngs[s] for s in ICO_SIZES})
    written[root / "resources" / "hearth.icns"] = icns(pngs)
    for path, data in written.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return sorted(written)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Make Hearth's icon files from resources/hearth.svg.")
    p.add_argument("--check", action="store_true", help="exit 1 when the committed files are out of date")
    args = p.parse_args(argv)
    if not args.check:
        for path in generate(ROOT):
            print(path.relative_to(ROOT))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        (fresh / "resources").mkdir()
        stale = [
            str(path.relative_to(fresh))
            for path in generate(fresh)
            if not (ROOT / path.relative_to(fresh)).exists()
            or (ROOT / path.relative_to(fresh)).read_bytes() != path.read_bytes()
        ]
    if stale:
        print("make_icons: out of date (run python resources/make_icons.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    print("make_icons: every icon file matches resources/hearth.svg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
