"""app.gui.preflight: no display, and Qt's xcb plugin missing a system library, each found before
Qt loads and said in one sentence. The missing library is real: a plugin stand-in compiled here,
linked against a library that is then deleted, so the dynamic linker cannot find it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.gui import preflight


def test_no_display_is_one_sentence() -> None:
    assert preflight.display_problem({}, "linux") is not None
    assert preflight.display_problem({"DISPLAY": ":0"}, "linux") is None
    assert preflight.display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert preflight.display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None  # asked for explicitly
    assert preflight.display_problem({}, "win32") is None and preflight.display_problem({}, "darwin") is None
    text = preflight.display_problem({}, "linux") or ""
    assert text.startswith("no display found") and text.count(".") == 1 and text.endswith(".")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Qt's xcb plugin is Linux only")
def test_the_real_xcb_plugin_has_its_libraries() -> None:
    plugin = preflight.xcb_plugin()
    assert plugin is not None and plugin.name == "libqxcb.so"
    assert preflight.missing_libraries(plugin) == [], "CI installs Qt's xcb libraries (.ci/run)"
    assert preflight.qt_libraries_problem({"DISPLAY": ":0"}) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF and ldd")
def test_a_missing_system_library_is_named_with_its_package(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc
    (tmp_path / "dep.c").write_text("int hearth_dep(void) { return 1; }\n")
    (tmp_path / "plugin.c").write_text("int hearth_dep(void);\nint plugin(void) { return hearth_dep(); }\n")
    dep = tmp_path / "libhearth-gone.so.0"
    subprocess.run([cc, "-shared", "-fPIC", "-Wl,-soname,libhearth-gone.so.0", "-o", str(dep), str(tmp_path / "dep.c")],
                   check=True)  # fmt: skip
    plugin = tmp_path / "libqxcb.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(plugin), str(tmp_path / "plugin.c"), str(dep)], check=True)
    dep.unlink()  # now the linker cannot find it, as a system without libxcb-cursor0 cannot find that
    assert preflight.missing_libraries(plugin) == ["libhearth-gone.so.0"]
    text = preflight.qt_libraries_problem({"DISPLAY": ":0"}, plugin=plugin)
    assert text == "Qt cannot open a window because these system libraries are missing: libhearth-gone.so.0."
    assert preflight.packages_for(["libxcb-cursor.so.0", "libxkbcommon-x11.so.0", "libxcb-cursor.so.0"]) == [
        "libxcb-cursor0", "libxkbcommon-x11-0"]  # fmt: skip
    assert preflight.qt_libraries_problem({"WAYLAND_DISPLAY": "w", "DISPLAY": ":0"}, plugin=plugin) is None


def counted_ldd(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The real library check, with each run noted."""
    runs: list[Path] = []
    real = preflight.missing_libraries

    def counted(plugin: Path) -> list[str]:
        runs.append(plugin)
        return real(plugin)

    monkeypatch.setattr(preflight, "missing_libraries", counted)
    return runs


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF and ldd")
def test_a_clean_check_is_remembered_until_the_libraries_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ldd runs once; later starts skip it until the plugin, the linker's cache (a stand-in file
    here for /etc/ld.so.cache, which ldconfig rewrites when packages change) or LD_LIBRARY_PATH
    change. A plugin that lacks a library is checked, and named, every time."""
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc
    (tmp_path / "plugin.c").write_text("int plugin(void) { return 1; }\n")
    plugin = tmp_path / "libqxcb.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(plugin), str(tmp_path / "plugin.c")], check=True)
    ld_cache = tmp_path / "ld.so.cache"
    ld_cache.write_text("one")
    checked = tmp_path / "cache" / preflight.CHECKED_FILE
    runs = counted_ldd(monkeypatch)
    env = {"DISPLAY": ":0"}

    def check(environ: dict[str, str] = env) -> str | None:
        return preflight.qt_libraries_problem(environ, plugin=plugin, checked=checked, ld_cache=ld_cache)

    assert check() is None and len(runs) == 1 and checked.is_file()
    assert check() is None and check() is None and len(runs) == 1  # remembered
    ld_cache.write_text("two, a package was removed")  # ldconfig rewrote the linker's cache
    assert check() is None and len(runs) == 2
    assert check({"DISPLAY": ":0", "LD_LIBRARY_PATH": str(tmp_path)}) is None and len(runs) == 3
    assert check() is None and len(runs) == 4  # back to the first environment: checked again, once
    assert check() is None and len(runs) == 4

    # A plugin that now lacks a library: said at every start, and no clean result recorded.
    (tmp_path / "dep.c").write_text("int hearth_dep(void) { return 1; }\n")
    dep = tmp_path / "libhearth-gone.so.0"
    subprocess.run([cc, "-shared", "-fPIC", "-Wl,-soname,libhearth-gone.so.0", "-o", str(dep), str(tmp_path / "dep.c")],
                   check=True)  # fmt: skip
    (tmp_path / "plugin.c").write_text("int hearth_dep(void);\nint plugin(void) { return hearth_dep(); }\n")
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(plugin), str(tmp_path / "plugin.c"), str(dep)], check=True)
    dep.unlink()
    before = checked.read_text()
    for _ in range(2):
        text = check()
        assert text is not None and "libhearth-gone.so.0" in text
    assert len(runs) == 6 and checked.read_text() == before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Qt's xcb plugin is Linux only")
def test_an_unwritable_cache_still_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache folder that cannot be written (a file in its place) costs the check at every start,
    never the window."""
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    plugin = preflight.xcb_plugin()
    assert plugin is not None
    runs = counted_ldd(monkeypatch)
    for _ in range(2):
        assert preflight.qt_libraries_problem({"DISPLAY": ":0"}, checked=blocker / preflight.CHECKED_FILE) is None
    assert len(runs) == 2
