"""hardware.probe on this machine, and with its boundaries faked.

NVIDIA GPUs are simulated by replacing the `pynvml` module (nvidia-ml-py) in sys.modules with a
fake that answers like NVML does; Apple Silicon by faking platform.system/machine and sysctl;
the llama.cpp build's offload support by replacing llama_builds.choose_build (whose child-process
probe would report the GPU) with one that answers as a CUDA or a CPU build would. Nothing here
needs a GPU.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from app.core import hardware
from app.core.hardware import GIB, GpuInfo, HardwareProfile, apple_working_set, probe


@pytest.fixture(autouse=True)
def _fresh_cache() -> Any:
    hardware.clear_cache()
    yield
    hardware.clear_cache()


def _fake_pynvml(devices: list[tuple[Any, int, int]], *, init_error: bool = False) -> types.ModuleType:
    """A stand-in for nvidia-ml-py: devices are (name, total, free)."""
    mod = types.ModuleType("pynvml")
    calls: list[str] = []

    def nvmlInit() -> None:
        calls.append("init")
        if init_error:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlShutdown() -> None:
        calls.append("shutdown")

    mod.nvmlInit = nvmlInit  # type: ignore[attr-defined]
    mod.nvmlShutdown = nvmlShutdown  # type: ignore[attr-defined]
    mod.nvmlDeviceGetCount = lambda: len(devices)  # type: ignore[attr-defined]
    mod.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    mod.nvmlDeviceGetName = lambda h: devices[h][0]  # type: ignore[attr-defined]
    mod.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(  # type: ignore[attr-defined]
        total=devices[h][1], free=devices[h][2], used=devices[h][1] - devices[h][2]
    )
    mod.calls = calls  # type: ignore[attr-defined]
    return mod


def _fake_llama_cpp(monkeypatch: pytest.MonkeyPatch, offload: bool) -> None:
    """The chosen build reports a CUDA device (offload) or none (the CPU build)."""
    from app.core import llama_builds

    def choose(forced: str | None = None, exclude: frozenset[str] = frozenset()) -> llama_builds.BuildChoice:
        if offload:
            gpu = GpuInfo("NVIDIA GeForce RTX 4080", "cuda", 16 * GIB, 15 * GIB)
            return llama_builds.BuildChoice(llama_builds.LlamaBuild("cuda", None), (gpu,), "CUDA on it.", ())
        return llama_builds.BuildChoice(llama_builds.LlamaBuild("cpu", None), (), "CPU: no GPU found.", ())

    monkeypatch.setattr(llama_builds, "choose_build", choose)


# ---- this real machine ------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "darwin", reason="Apple Silicon reports its GPU")
def test_probe_this_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The build machine: no GPU, a CPU-only llama.cpp, NVML absent (or without a driver)."""
    try:
        import pynvml  # type: ignore[import-not-found,import-untyped,unused-ignore]  # noqa: F401

        has_nvml = True
    except ImportError:
        has_nvml = False
    hw = probe(tmp_path, refresh=True)
    assert hw.physical_cores > 0 and hw.logical_cores >= hw.physical_cores
    assert 0 < hw.ram_available <= hw.ram_total
    assert hw.cpu_name
    assert hw.os and hw.arch
    assert hw.disk_free > 0
    if not has_nvml:
        assert hw.gpus == ()
    from app.core import llama_builds

    assert hw.gpu_offload_supported == bool(llama_builds.choose_build(llama_builds.preferred_build()).devices)
    assert hw.llama_build and hw.llama_build_reason
    if hw.arch == "x86_64" and Path("/proc/cpuinfo").exists():
        flags = Path("/proc/cpuinfo").read_text()
        assert ("avx2" in hw.cpu_features) == (" avx2" in flags)


def test_probe_is_cached_until_refresh(tmp_path: Path) -> None:
    first = probe(tmp_path)
    assert probe(tmp_path) is first
    assert probe(tmp_path, refresh=True) is not first
    assert probe(tmp_path / "other") is not probe(tmp_path)


def test_to_dict_is_json(tmp_path: Path) -> None:
    hw = HardwareProfile(
        os="Linux",
        arch="x86_64",
        cpu_name="Test CPU",
        physical_cores=4,
        logical_cores=8,
        cpu_features=("avx2", "fma"),
        ram_total=16 * GIB,
        ram_available=12 * GIB,
        gpus=(GpuInfo("NVIDIA GeForce RTX 4080", "cuda", 16 * GIB, 15 * GIB),),
        gpu_offload_supported=True,
        disk_free=100 * GIB,
    )
    data = json.loads(json.dumps(hw.to_dict()))
    assert data["gpus"][0]["name"] == "NVIDIA GeForce RTX 4080"
    assert data["cpu_features"] == ["avx2", "fma"]
    assert data["gpu_offload_supported"] is True
    assert json.loads(json.dumps(probe(tmp_path).to_dict()))["ram_total"] > 0


def test_disk_free_of_a_folder_that_does_not_exist_yet(tmp_path: Path) -> None:
    hw = probe(tmp_path / "not" / "there" / "yet", refresh=True)
    assert hw.disk_free > 0


# ---- NVIDIA through a fake NVML ---------------------------------------------------------------


@pytest.fixture
def linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware.platform, "system", lambda: "Linux")
    monkeypatch.setattr(hardware.platform, "machine", lambda: "x86_64")


def test_nvidia_gpus_from_nvml(monkeypatch: pytest.MonkeyPatch, linux: None) -> None:
    fake = _fake_pynvml(
        [
            (b"NVIDIA GeForce RTX 3070", 8 * GIB, 7 * GIB),  # older nvidia-ml-py: bytes
            ("NVIDIA GeForce RTX 4080", 16 * GIB, 15 * GIB),
        ]
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    _fake_llama_cpp(monkeypatch, offload=True)
    hw = probe(refresh=True)
    assert [g.name for g in hw.gpus] == ["NVIDIA GeForce RTX 3070", "NVIDIA GeForce RTX 4080"]
    assert all(g.backend == "cuda" and not g.unified_memory for g in hw.gpus)
    assert hw.gpus[1].vram_total == 16 * GIB and hw.gpus[1].vram_free == 15 * GIB
    assert hw.best_gpu is not None and hw.best_gpu.name == "NVIDIA GeForce RTX 4080"
    assert hw.gpu_offload_supported is True
    assert fake.calls == ["init", "shutdown"]


def test_nvml_without_a_driver_means_no_gpu(monkeypatch: pytest.MonkeyPatch, linux: None) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml([], init_error=True))
    assert probe(refresh=True).gpus == ()


def test_nvml_absent_means_no_gpu(monkeypatch: pytest.MonkeyPatch, linux: None) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    assert probe(refresh=True).gpus == ()


def test_one_broken_device_does_not_hide_the_others(monkeypatch: pytest.MonkeyPatch, linux: None) -> None:
    fake = _fake_pynvml([("A", 1, 1), ("NVIDIA RTX A5000", 24 * GIB, 23 * GIB)])

    def name(h: int) -> str:
        if h == 0:
            raise RuntimeError("GPU is lost")
        return "NVIDIA RTX A5000"

    fake.nvmlDeviceGetName = name  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert [g.name for g in probe(refresh=True).gpus] == ["NVIDIA RTX A5000"]


def test_llama_cpp_without_offload_or_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_llama_cpp(monkeypatch, offload=False)
    hw = probe(refresh=True)
    assert hw.gpu_offload_supported is False and hw.llama_build == "cpu"
    assert hw.llama_build_reason == "CPU: no GPU found."
    _fake_llama_cpp(monkeypatch, offload=True)
    assert probe(refresh=True, check_offload=False).gpu_offload_supported is False
    assert probe(refresh=True, check_offload=False).llama_build == ""


def test_gpus_are_the_devices_the_chosen_build_reports(monkeypatch: pytest.MonkeyPatch, linux: None) -> None:
    """A Vulkan device that NVML does not know (an AMD card, lavapipe) is what the planner sees."""
    from app.core import llama_builds

    vk = GpuInfo("AMD Radeon RX 7800 XT", "vulkan", 16 * GIB, 15 * GIB)
    choice = llama_builds.BuildChoice(llama_builds.LlamaBuild("vulkan", Path("/b/vulkan")), (vk,), "Vulkan.", ())
    monkeypatch.setattr(llama_builds, "choose_build", lambda forced=None, exclude=frozenset(): choice)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    hw = probe(refresh=True)
    assert hw.gpus == (vk,) and hw.gpu_offload_supported and hw.llama_build == "vulkan"


# ---- Apple Silicon, faked ---------------------------------------------------------------------


def test_apple_silicon_reports_metal_with_unified_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(hardware.platform, "machine", lambda: "arm64")
    monkeypatch.setattr(hardware, "_sysctl", lambda name: "Apple M1" if "brand" in name else "")
    hw = probe(refresh=True)
    assert hw.cpu_name == "Apple M1"
    assert "neon" in hw.cpu_features
    (gpu,) = hw.gpus
    assert gpu.backend == "metal" and gpu.unified_memory
    assert gpu.vram_total == apple_working_set(hw.ram_total)


def test_apple_working_set() -> None:
    assert apple_working_set(16 * GIB) == pytest.approx(16 * GIB * 2 / 3, rel=1e-6)  # ~10.7 GB
    assert apple_working_set(36 * GIB) == pytest.approx(24 * GIB, rel=1e-6)
    assert apple_working_set(64 * GIB) == pytest.approx(48 * GIB, rel=1e-6)


# ---- never raises -----------------------------------------------------------------------------


def test_probe_survives_everything_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise OSError("nope")

    monkeypatch.setattr(psutil, "virtual_memory", boom)
    monkeypatch.setattr(psutil, "cpu_count", boom)
    monkeypatch.setattr(hardware, "_read_text", boom)
    monkeypatch.setattr(hardware, "_sysctl", boom)
    monkeypatch.setattr(hardware.shutil, "disk_usage", boom)
    monkeypatch.setattr(hardware.platform, "machine", boom)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    hw = probe(refresh=True)
    assert hw.physical_cores >= 1 and hw.logical_cores >= 1
    assert hw.arch == "unknown"
    assert hw.cpu_name
    assert hw.disk_free == 0
    assert hw.gpus == ()
