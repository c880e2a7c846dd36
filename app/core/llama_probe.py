"""Run as a child process (`python -m app.core.llama_probe`): load one llama.cpp build, list the
devices it can offload to, print one JSON line, exit.

app.core.llama_builds starts it with LLAMA_CPP_LIB_PATH pointing at the build to test, so a
build whose libraries or driver are broken (a missing libcuda, an old Vulkan loader, a driver
that aborts) fails here, in a throw-away process, and never in the window's. Nothing is imported
at module level: importing this module (as the architecture test does) loads no llama.cpp.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

RESULT_ENV = "HEARTH_PROBE_RESULT"  # a file for the JSON line, instead of stdout

# enum ggml_backend_dev_type (ggml-backend.h of the llama.cpp in llama-cpp-python 0.3.36)
DEVICE_TYPES = ("cpu", "gpu", "igpu", "accel", "meta")


def _ggml_library(folder: Path) -> Any:
    import ctypes

    names = {"win32": ("ggml.dll", "libggml.dll"), "darwin": ("libggml.0.dylib", "libggml.dylib", "libggml.so")}
    for name in names.get(sys.platform, ("libggml.so.0", "libggml.so")):
        if (folder / name).exists():
            # The copy libllama loaded (Linux: by its soname): a second copy would be a second
            # backend registry, initialising every GPU twice.
            lib = ctypes.CDLL(name if name == "libggml.so.0" else str(folder / name))
            lib.ggml_backend_dev_count.restype = ctypes.c_size_t
            lib.ggml_backend_dev_get.restype = ctypes.c_void_p
            lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
            for fn in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
                getattr(lib, fn).restype = ctypes.c_char_p
                getattr(lib, fn).argtypes = [ctypes.c_void_p]
            lib.ggml_backend_dev_type.restype = ctypes.c_int
            lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
            lib.ggml_backend_dev_memory.restype = None
            lib.ggml_backend_dev_memory.argtypes = [
                ctypes.c_void_p,
                ctypes.POINTER(ctypes.c_size_t),
                ctypes.POINTER(ctypes.c_size_t),
            ]
            lib.ggml_backend_dev_backend_reg.restype = ctypes.c_void_p
            lib.ggml_backend_dev_backend_reg.argtypes = [ctypes.c_void_p]
            lib.ggml_backend_reg_name.restype = ctypes.c_char_p
            lib.ggml_backend_reg_name.argtypes = [ctypes.c_void_p]
            return lib
    raise FileNotFoundError(f"no ggml library in {folder}")


def devices(folder: Path) -> list[dict[str, Any]]:
    """Every non-CPU device the loaded build registered (GPUs, integrated GPUs)."""
    import ctypes

    lib = _ggml_library(folder)
    found: list[dict[str, Any]] = []
    for i in range(int(lib.ggml_backend_dev_count())):
        dev = lib.ggml_backend_dev_get(i)
        kind_index = int(lib.ggml_backend_dev_type(dev))
        kind = DEVICE_TYPES[kind_index] if 0 <= kind_index < len(DEVICE_TYPES) else "unknown"
        if kind not in ("gpu", "igpu"):
            continue
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        lib.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        reg = lib.ggml_backend_dev_backend_reg(dev)
        found.append(
            {
                "id": (lib.ggml_backend_dev_name(dev) or b"").decode("utf-8", "replace"),
                "name": (lib.ggml_backend_dev_description(dev) or b"").decode("utf-8", "replace").strip(),
                "backend": (lib.ggml_backend_reg_name(reg) or b"").decode("utf-8", "replace").lower(),
                "type": kind,
                "free": int(free.value),
                "total": int(total.value),
            }
        )
    return found


def probe() -> dict[str, Any]:
    import llama_cpp

    llama_cpp.llama_backend_init()
    folder = Path(os.environ.get("LLAMA_CPP_LIB_PATH") or Path(llama_cpp.__file__).parent / "lib")
    return {
        "ok": True,
        "version": str(getattr(llama_cpp, "__version__", "")),
        "offload": bool(llama_cpp.llama_supports_gpu_offload()),
        "devices": devices(folder),
        "system_info": (llama_cpp.llama_print_system_info() or b"").decode("utf-8", "replace").strip(),
    }


def main() -> int:
    try:
        result = probe()
    except Exception as exc:  # reported to the parent as a sentence; the parent decides
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    line = json.dumps(result) + "\n"
    target = os.environ.get(RESULT_ENV)
    if target:  # a windowed (GUI-subsystem) frozen app on Windows has no sys.stdout
        Path(target).write_text(line, encoding="utf-8")
    elif sys.stdout is not None:
        sys.stdout.write(line)
        sys.stdout.flush()
    return 0 if result["ok"] else 3


if __name__ == "__main__":
    sys.exit(main())
