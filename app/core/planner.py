"""Turn hardware + GGUF metadata into a LoadPlan with a sentence that explains it.

CONTRACT (implementation pending): `plan_load(hw, model, ctx_cap=None) -> LoadPlan` and
`step_down(plan, hw, model) -> LoadPlan | None` for out-of-memory retries.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoadPlan:
    n_gpu_layers: int  # 0 = CPU only; model.n_layers + 1 = everything incl. output layer
    n_ctx: int
    n_batch: int
    n_ubatch: int
    n_threads: int  # generation: physical cores
    n_threads_batch: int  # prompt processing: all logical cores
    flash_attn: bool
    type_k: str  # "f16" | "q8_0"
    type_v: str
    use_mmap: bool
    swa_full: bool  # keep a full-size sliding-window cache so prefix reuse stays exact
    device: str  # "cpu" | "cuda" | "metal" | ...
    fits: bool  # False: refused, reason says why
    reason: str  # one sentence for the user
    est_ram_bytes: int = 0
    est_vram_bytes: int = 0
