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
