"""Probe the machine: CPU, RAM, GPUs and VRAM, whether llama.cpp can offload, free disk.

CONTRACT (implementation pending): `probe(models_dir) -> HardwareProfile`, cheap and cached.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    gpu_offload_supported: bool = False  # the installed llama.cpp build can offload layers
    disk_free: int = 0  # bytes free where models live
