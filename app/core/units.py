"""Sizes in words: the one formatter every screen and command uses.

One convention everywhere: decimal SI units (1 kB = 1,000 bytes, 1 GB = 10⁹ bytes), as Hugging
Face, macOS and most download pages count, so a file's size reads the same in the model picker,
the Library, `hearth models`, the planner's sentence and the hub's page. Memory (RAM, VRAM) is
counted the same way, so "needs about 13.0 GB; 11.5 GB available" compares like with like.
"""

from __future__ import annotations

_UNITS = (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3))


def format_bytes(n: float | None) -> str:
    """ "12.1 GB", "253 MB", "33 kB", "512 bytes"; "size unknown" for None.

    Gigabytes and terabytes keep one decimal (models differ by tenths there); megabytes and
    kilobytes are whole numbers."""
    if n is None:
        return "size unknown"
    n = max(float(n), 0.0)
    for unit, scale in _UNITS:
        if n >= scale:
            value = n / scale
            if unit in ("TB", "GB"):
                return f"{value:.1f} {unit}"
            # 999.6 MB would round to "1000 MB": say "1.0 GB" instead.
            return f"{value:.0f} {unit}" if round(value) < 1000 else format_bytes(1000 * scale)
    return f"{n:.0f} bytes"


def format_rate(bytes_per_s: float) -> str:
    """ "42 MB/s"; "" when nothing is moving."""
    return f"{format_bytes(bytes_per_s)}/s" if bytes_per_s > 0 else ""
