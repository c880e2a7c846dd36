"""What the frozen bundle holds: one copy of each llama.cpp library, only the Qt parts Hearth
uses, and the macOS Info.plist."""

from __future__ import annotations

import plistlib

from installers import bundle_plan


def test_one_copy_of_each_llama_library() -> None:
    keep = bundle_plan.keep_llama_lib
    assert keep("libllama.so") and keep("libggml.so.0") and keep("libggml-base.so.0") and keep("libggml-vulkan.so.0")
    assert not keep("libllama.so.0") and not keep("libggml.so") and not keep("libggml-cpu.so.0.25.3")
    assert not keep("libmtmd.so.0") and not keep("mtmd.dll")
    assert keep("llama.dll") and keep("ggml-vulkan.dll") and keep("libggml-metal.dylib")


def test_unused_qt_parts_are_dropped() -> None:
    toc = [
        ("PySide6/Qt/lib/libQt6Widgets.so.6", "/x", "BINARY"),
        ("PySide6/Qt/lib/libQt6Qml.so.6", "/x", "BINARY"),
        ("PySide6/Qt/plugins/platforms/libqxcb.so", "/x", "BINARY"),
        ("PySide6/Qt/plugins/platforms/libqeglfs.so", "/x", "BINARY"),
        ("PySide6/Qt/plugins/platformthemes/libqgtk3.so", "/x", "BINARY"),
        ("llama_cpp/lib/libllama.so", "/x", "BINARY"),
    ]
    kept = [dest for dest, _src, _kind in bundle_plan.drop_unused_qt(toc)]
    assert kept == ["PySide6/Qt/lib/libQt6Widgets.so.6", "PySide6/Qt/plugins/platforms/libqxcb.so",
                    "llama_cpp/lib/libllama.so"]  # fmt: skip


def test_macos_info_plist() -> None:
    from app import __version__

    info = plistlib.loads(plistlib.dumps(bundle_plan.info_plist()))
    assert info["CFBundleIdentifier"] == "io.github.hearth_chat.Hearth"
    assert info["CFBundleShortVersionString"] == __version__
    assert info["NSHighResolutionCapable"] is True
    assert info["LSMinimumSystemVersion"] == "12.0"
    assert info["CFBundleIconFile"] == "hearth.icns"
