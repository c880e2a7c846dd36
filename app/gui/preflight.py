"""Checks before the window's process creates a QApplication, each answered with one sentence.

Qt aborts the process (after a paragraph about plugins) when it has no display or when its xcb
platform plugin lacks a system library; a person who double-clicked an icon sees nothing at all.
These checks run first and say what is wrong. This module imports no Qt: it must work where Qt
cannot start.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

# Debian/Ubuntu packages that provide the libraries Qt's xcb plugin needs (by soname prefix).
DEBIAN_PACKAGES = {
    "libxcb-cursor.so": "libxcb-cursor0",
    "libxkbcommon-x11.so": "libxkbcommon-x11-0",
    "libxkbcommon.so": "libxkbcommon0",
    "libxcb-icccm.so": "libxcb-icccm4",
    "libxcb-image.so": "libxcb-image0",
    "libxcb-keysyms.so": "libxcb-keysyms1",
    "libxcb-randr.so": "libxcb-randr0",
    "libxcb-render-util.so": "libxcb-render-util0",
    "libxcb-shape.so": "libxcb-shape0",
    "libxcb-xinerama.so": "libxcb-xinerama0",
    "libxcb-xkb.so": "libxcb-xkb1",
    "libxcb-xfixes.so": "libxcb-xfixes0",
    "libxcb-sync.so": "libxcb-sync1",
    "libxcb-shm.so": "libxcb-shm0",
    "libxcb-render.so": "libxcb-render0",
    "libxcb.so": "libxcb1",
    "libX11-xcb.so": "libx11-xcb1",
    "libX11.so": "libx11-6",
    "libEGL.so": "libegl1",
    "libGL.so": "libgl1",
    "libOpenGL.so": "libopengl0",
    "libfontconfig.so": "libfontconfig1",
    "libfreetype.so": "libfreetype6",
    "libdbus-1.so": "libdbus-1-3",
    "libglib-2.0.so": "libglib2.0-0",
}


def display_problem(environ: dict[str, str] | None = None, platform: str = sys.platform) -> str | None:
    """A sentence when there is no display to open a window on, else None."""
    env = os.environ if environ is None else environ
    if not platform.startswith("linux") or env.get("QT_QPA_PLATFORM"):
        return None  # Windows and macOS always have one; an explicit Qt platform is the user's choice
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return (
        "no display found (neither DISPLAY nor WAYLAND_DISPLAY is set): start Hearth from a desktop session, "
        "or use its terminal commands (hearth --help)."
    )


def _uses_xcb(env: dict[str, str] | os._Environ[str]) -> bool:
    platform = env.get("QT_QPA_PLATFORM", "")
    if platform:
        return platform.split(":")[0] == "xcb"
    return bool(env.get("DISPLAY")) and not env.get("WAYLAND_DISPLAY")


def xcb_plugin() -> Path | None:
    """Qt's xcb platform plugin of the PySide6 that would be imported (found without importing it)."""
    try:
        spec = importlib.util.find_spec("PySide6")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    plugin = Path(spec.origin).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.exists() else None


def missing_libraries(library: Path) -> list[str]:
    """The sonames `library` needs that the dynamic linker cannot find (from ldd), in order."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    import subprocess  # here: every start imports this module, and most never get this far

    try:
        out = subprocess.run([ldd, str(library)], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    missing = []
    for line in out.splitlines():
        name, _, where = line.strip().partition("=>")
        if "not found" in where and name.strip() not in missing:
            missing.append(name.strip())
    return missing


def packages_for(sonames: list[str]) -> list[str]:
    found = []
    for soname in sonames:
        base = soname.split(".so")[0] + ".so"
        package = DEBIAN_PACKAGES.get(base)
        if package and package not in found:
            found.append(package)
    return found


LD_CACHE = Path("/etc/ld.so.cache")
CHECKED_FILE = "xcb-libraries-found"  # in the cache folder: what the last clean check depended on


def check_key(plugin: Path, environ: dict[str, str] | os._Environ[str], ld_cache: Path = LD_CACHE) -> str | None:
    """What a clean library check of `plugin` depends on: the plugin file, the dynamic linker's
    cache (ldconfig rewrites it whenever a package adds or removes a library) and
    LD_LIBRARY_PATH. None when one of them cannot be read (then the check always runs)."""
    try:
        found, linker = plugin.stat(), ld_cache.stat()
    except OSError:
        return None
    return "\n".join(
        [
            str(plugin),
            f"{found.st_size}:{found.st_mtime_ns}",
            f"{linker.st_size}:{linker.st_mtime_ns}",
            environ.get("LD_LIBRARY_PATH", ""),
        ]
    )


def _checked_file() -> Path | None:
    from app.core import paths

    try:
        return paths.cache_dir(create=False) / CHECKED_FILE
    except OSError:
        return None


def qt_libraries_problem(
    environ: dict[str, str] | None = None,
    plugin: Path | None = None,
    *,
    checked: Path | None = None,
    ld_cache: Path = LD_CACHE,
) -> str | None:
    """A sentence naming the system libraries Qt's xcb plugin lacks (Linux, X11 only), else None.

    The check runs ldd (a subprocess, 10-20 ms); a clean result is remembered in `checked` (the
    cache folder's file by default) with what it depended on, so later starts skip it until the
    plugin, the installed libraries or LD_LIBRARY_PATH change."""
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux") or not _uses_xcb(env):
        return None
    plugin = plugin or xcb_plugin()
    if plugin is None:
        return None
    key = check_key(plugin, env, ld_cache)
    checked = checked or _checked_file()
    if key is not None and checked is not None:
        try:
            if checked.read_text(encoding="utf-8") == key:
                return None
        except (OSError, UnicodeDecodeError):
            pass  # never checked, or unreadable: check
    missing = missing_libraries(plugin)
    if not missing:
        if key is not None and checked is not None:
            try:
                checked.parent.mkdir(parents=True, exist_ok=True)
                checked.write_text(key, encoding="utf-8")
            except OSError:
                pass  # a read-only home: the check runs at every start, as before
        return None
    packages = packages_for(missing)
    hint = f" (on Debian or Ubuntu: sudo apt install {' '.join(packages)})" if packages else ""
    return f"Qt cannot open a window because these system libraries are missing: {', '.join(missing)}{hint}."


def window_problem() -> str | None:
    """The first reason the window cannot open, or None."""
    return display_problem() or qt_libraries_problem()
