"""Probe the machine: CPU, RAM, GPUs and VRAM, whether llama.cpp can offload, free disk.

`probe(models_dir) -> HardwareProfile` is cheap and cached (one result per models folder until
`refresh=True`). It never raises: every part has a fallback, so a broken driver or a missing
optional package only makes the profile more modest, never stops the app from starting.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GIB = 1024**3


@dataclass(frozen=True)
class GpuInfo:
    name: str
    backend: str  # "cuda", "metal", "vulkan", "rocm", "unknown"
    vram_total: int  # bytes
    vram_free: int  # bytes
    unified_memory: bool = False  # Apple Silicon: VRAM is a share of RAM


@dataclass(frozen=True)
class HardwareProfile:
    os: str
    arch: str
    cpu_name: str
    physical_cores: int
    logical_cores: int
    cpu_features: tuple[str, ...]  # e.g. ("avx2", "avx512f") or ("neon",)
    ram_total: int
    ram_available: int
    gpus: tuple[GpuInfo, ...] = field(default_factory=tuple)
    gpu_offload_supported: bool = False  # the chosen llama.cpp build can offload layers
    disk_free: int = 0  # bytes free where models live
    llama_build: str = ""  # the llama.cpp build the engine loads ("cpu", "vulkan", ...); "" when not checked
    llama_build_reason: str = ""  # why that build (llama_builds.BuildChoice.reason)

    @property
    def best_gpu(self) -> GpuInfo | None:
        """The GPU with the most free memory (llama.cpp's main GPU is chosen the same way here)."""
        if not self.gpus:
            return None
        return max(self.gpus, key=lambda g: (g.vram_free, g.vram_total))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (for `hearth probe --json` and bug reports)."""
        data = asdict(self)
        data["cpu_features"] = list(self.cpu_features)
        data["gpus"] = [asdict(g) for g in self.gpus]
        return data


# The features the planner or a bug report cares about; the full flag list is hundreds long.
_INTERESTING_FEATURES = ("avx", "avx2", "avx512f", "fma", "f16c", "neon", "dotprod", "i8mm", "sve")

_cache: dict[tuple[str, bool], HardwareProfile] = {}
_cache_lock = threading.Lock()


def probe(models_dir: Path | None = None, *, refresh: bool = False, check_offload: bool = True) -> HardwareProfile:
    """Describe this machine. Cached per (models_dir, check_offload); `refresh=True` re-probes.

    `check_offload=False` skips importing llama_cpp (about 0.2 s) and reports no offload support;
    use it only where the answer does not matter (e.g. a quick `hearth probe` of the CPU).
    With it, the GPUs are the devices that the llama.cpp build chosen by app.core.llama_builds
    reports (a Vulkan device, say, that NVML knows nothing of); that choice is tested in a child
    process and cached on disk, so this never loads llama.cpp in the calling process.
    """
    key = (str(models_dir) if models_dir is not None else "", check_offload)
    with _cache_lock:
        if not refresh and key in _cache:
            return _cache[key]
    profile = _probe_uncached(models_dir, check_offload)
    with _cache_lock:
        _cache[key] = profile
    return profile


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _probe_uncached(models_dir: Path | None, check_offload: bool) -> HardwareProfile:
    os_name = _safe(platform.system, "") or "unknown"
    arch = _normalise_arch(_safe(platform.machine, ""))
    ram_total, ram_available = _ram()
    physical, logical = _cores()
    gpus: tuple[GpuInfo, ...] = _safe(lambda: _gpus(os_name, arch, ram_total), ())
    offload, build, build_reason = False, "", ""
    if check_offload:
        choice = _safe(_build_choice, None)
        if choice is not None:
            build, build_reason = choice.build.name, choice.reason
            offload = bool(choice.devices)
            if choice.devices and not (choice.build.name == "cuda" and gpus):
                gpus = choice.devices  # else NVML's view of the same GPUs, with today's free memory
    return HardwareProfile(
        os=os_name,
        arch=arch,
        cpu_name=_safe(lambda: _cpu_name(os_name), "") or _safe(platform.processor, "") or f"{arch} CPU",
        physical_cores=physical,
        logical_cores=logical,
        cpu_features=_safe(lambda: _cpu_features(os_name, arch), ()),
        ram_total=ram_total,
        ram_available=ram_available,
        gpus=gpus,
        gpu_offload_supported=offload,
        disk_free=_safe(lambda: _disk_free(models_dir), 0),
        llama_build=build,
        llama_build_reason=build_reason,
    )


def _build_choice() -> Any:
    from app.core import llama_builds  # it imports this module (GpuInfo)

    return llama_builds.choose_build(llama_builds.preferred_build())


def _safe(fn: Any, default: Any) -> Any:
    try:
        return fn()
    except Exception as exc:  # a probe must never stop the app
        log.debug("hardware probe part failed: %r", exc)
        return default


def _normalise_arch(machine: str) -> str:
    m = machine.lower()
    if m in ("x86_64", "amd64", "x64"):
        return "x86_64"
    if m in ("arm64", "aarch64", "armv8l"):
        return "arm64"
    return m or "unknown"


# ---- CPU -------------------------------------------------------------------------------------


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def _sysctl(name: str) -> str:
    import subprocess  # macOS only; not worth its import time elsewhere

    out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=2, check=False)
    return out.stdout.strip() if out.returncode == 0 else ""


def _cpu_name(os_name: str) -> str:
    if os_name == "Linux":
        info = _read_text("/proc/cpuinfo")
        for key in ("model name", "Hardware", "Processor", "cpu model"):
            for line in info.splitlines():
                k, _, v = line.partition(":")
                if k.strip() == key and v.strip():
                    return v.strip()
    elif os_name == "Darwin":
        return _sysctl("machdep.cpu.brand_string")
    elif os_name == "Windows":
        import winreg  # type: ignore[import-not-found,unused-ignore]

        with winreg.OpenKey(  # type: ignore[attr-defined,unused-ignore]
            winreg.HKEY_LOCAL_MACHINE,  # type: ignore[attr-defined,unused-ignore]
            r"HARDWARE\DESCRIPTION\System\CentralProcessor\0",
        ) as k:
            return str(winreg.QueryValueEx(k, "ProcessorNameString")[0]).strip()  # type: ignore[attr-defined,unused-ignore]
    return ""


def _cpu_features(os_name: str, arch: str) -> tuple[str, ...]:
    flags: set[str] = set()
    if os_name == "Linux":
        for line in _read_text("/proc/cpuinfo").splitlines():
            k, _, v = line.partition(":")
            if k.strip() in ("flags", "Features"):
                flags.update(v.split())
                break
        if "asimd" in flags:  # arm64 Linux calls NEON "asimd"
            flags.add("neon")
        if "asimddp" in flags:
            flags.add("dotprod")
    elif os_name == "Darwin" and arch == "x86_64":
        for name in ("machdep.cpu.features", "machdep.cpu.leaf7_features"):
            flags.update(f.lower() for f in _sysctl(name).split())
        if "avx2" in flags or "avx1.0" in flags:
            flags.add("avx")
    if arch == "arm64":
        flags.add("neon")  # mandatory in ARMv8-A
    return tuple(f for f in _INTERESTING_FEATURES if f in flags)


def _cores() -> tuple[int, int]:
    physical = logical = 0
    try:
        import psutil

        logical = psutil.cpu_count(logical=True) or 0
        physical = psutil.cpu_count(logical=False) or 0
    except Exception as exc:
        log.debug("psutil cpu_count failed: %r", exc)
    logical = logical or os.cpu_count() or 1
    physical = physical or logical
    return max(1, physical), max(1, logical)


def _ram() -> tuple[int, int]:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return int(vm.total), int(vm.available)
    except Exception as exc:
        log.debug("psutil virtual_memory failed: %r", exc)
    try:  # POSIX fallback
        pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        avail = os.sysconf("SC_AVPHYS_PAGES")
        return int(pages * page), int(avail * page)
    except (AttributeError, ValueError, OSError):
        return 0, 0


# ---- GPUs ------------------------------------------------------------------------------------


def apple_working_set(ram_total: int) -> int:
    """Metal's recommendedMaxWorkingSetSize, approximated from the RAM size.

    macOS lets the GPU wire at most this much of the unified memory (the value Metal reports to
    llama.cpp as the device's free memory). Observed on Apple Silicon: about 2/3 of RAM on machines
    with 36 GB or less, about 3/4 above (e.g. 16 GB -> ~10.7 GB, 64 GB -> 48 GB). The real value
    needs Metal (pyobjc) which Hearth does not import; this is close enough to plan with.
    """
    fraction = 2 / 3 if ram_total <= 36 * GIB else 3 / 4
    return int(ram_total * fraction)


def _gpus(os_name: str, arch: str, ram_total: int) -> tuple[GpuInfo, ...]:
    if os_name == "Darwin":
        if arch != "arm64":
            return ()  # Intel Macs: llama.cpp's Metal backend is not worth it there
        name = _safe(lambda: _sysctl("machdep.cpu.brand_string"), "") or "Apple Silicon"
        working_set = apple_working_set(ram_total)
        return (
            GpuInfo(
                name=f"{name} GPU",
                backend="metal",
                vram_total=working_set,
                vram_free=working_set,
                unified_memory=True,
            ),
        )
    return _nvidia_gpus()


def _nvidia_gpus() -> tuple[GpuInfo, ...]:
    """NVIDIA GPUs through NVML (nvidia-ml-py). No package, no driver, any error: no GPUs."""
    try:
        import pynvml  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except Exception:
        return ()
    try:
        pynvml.nvmlInit()
    except Exception as exc:
        log.debug("NVML init failed: %r", exc)
        return ()
    gpus: list[GpuInfo] = []
    try:
        for i in range(int(pynvml.nvmlDeviceGetCount())):
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                name = pynvml.nvmlDeviceGetName(handle)
                if isinstance(name, bytes):  # older nvidia-ml-py returns bytes
                    name = name.decode("utf-8", "replace")
                mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
                gpus.append(GpuInfo(name=str(name), backend="cuda", vram_total=int(mem.total), vram_free=int(mem.free)))
            except Exception as exc:
                log.debug("NVML device %d failed: %r", i, exc)
    except Exception as exc:
        log.debug("NVML device count failed: %r", exc)
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
    return tuple(gpus)


# ---- disk ------------------------------------------------------------------------------------


def _disk_free(models_dir: Path | None) -> int:
    path = Path(models_dir) if models_dir is not None else Path.home()
    path = path.expanduser()
    # The models folder may not exist yet: measure the nearest folder above it that does.
    while not path.exists():
        if path.parent == path:
            break
        path = path.parent
    return int(shutil.disk_usage(path).free)
