"""The load planner against simulated machines, with gpt-oss-20b's real parameters."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from app.core.gguf_file import ModelInfo
from app.core.hardware import GIB, GpuInfo, HardwareProfile, apple_working_set
from app.core.planner import (
    CPU_DEFAULT_CTX,
    LoadPlan,
    estimate_memory,
    kv_bytes,
    kv_cells,
    plan_load,
    ram_budget,
    step_down,
    vram_budget,
)

KIB = 1024
MIB = 1024**2

GPT_OSS_20B = ModelInfo(
    path=Path("gpt-oss-20b-mxfp4.gguf"),
    file_size=12_109_565_632,
    architecture="gpt-oss",
    name="gpt-oss-20b",
    n_layers=24,
    n_ctx_train=131072,
    n_embd=2880,
    n_head=64,
    n_head_kv=8,
    head_dim_k=64,
    head_dim_v=64,
    sliding_window=128,
    n_swa_layers=12,
    n_experts=32,
    n_experts_used=4,
    n_vocab=201088,
    file_type="MXFP4",
    tensor_bytes=12_100_000_000,
    output_tensor_bytes=2 * 615_000_000,  # token_embd + output, Q8_0 each
)

GEMMA3_270M = ModelInfo(
    path=Path("gemma-3-270m-q4_k_m.gguf"),
    file_size=253_113_024,
    architecture="gemma3",
    name="Gemma 3 270m",
    n_layers=18,
    n_ctx_train=32768,
    n_embd=640,
    n_head=4,
    n_head_kv=1,
    head_dim_k=256,
    head_dim_v=256,
    sliding_window=512,
    n_swa_layers=15,
    n_vocab=262144,
    tensor_bytes=246_587_904,
    output_tensor_bytes=178_257_920,
)


def machine(
    ram_gb: float,
    avail_gb: float,
    gpus: tuple[GpuInfo, ...] = (),
    *,
    offload: bool = True,
    physical: int = 8,
    logical: int = 16,
    apple: bool = False,
) -> HardwareProfile:
    return HardwareProfile(
        os="Darwin" if apple else "Linux",
        arch="arm64" if apple else "x86_64",
        cpu_name="Test CPU",
        physical_cores=physical,
        logical_cores=logical,
        cpu_features=("neon",) if apple else ("avx2", "fma"),
        ram_total=int(ram_gb * GIB),
        ram_available=int(avail_gb * GIB),
        gpus=gpus,
        gpu_offload_supported=offload,
        disk_free=500 * GIB,
    )


def nvidia(name: str, total_gb: float, free_gb: float) -> GpuInfo:
    return GpuInfo(name=name, backend="cuda", vram_total=int(total_gb * GIB), vram_free=int(free_gb * GIB))


def apple(name: str, ram_gb: float, avail_gb: float) -> HardwareProfile:
    ws = apple_working_set(int(ram_gb * GIB))
    gpu = GpuInfo(name=f"{name} GPU", backend="metal", vram_total=ws, vram_free=ws, unified_memory=True)
    return machine(ram_gb, avail_gb, (gpu,), apple=True)


RTX_4080 = machine(32, 26, (nvidia("NVIDIA GeForce RTX 4080", 16, 15.3),))
RTX_3090 = machine(32, 26, (nvidia("NVIDIA GeForce RTX 3090", 24, 23.2),))
RTX_3070 = machine(32, 26, (nvidia("NVIDIA GeForce RTX 3070", 8, 7.4),))
CPU_24GB = machine(23.5, 22.3, physical=2, logical=2)  # the build machine
CPU_8GB = machine(7.6, 6.0, physical=4, logical=8)
M1_16GB = apple("Apple M1", 16, 13.5)
M3_MAX_64GB = apple("Apple M3 Max", 64, 52)
ALL_LAYERS = GPT_OSS_20B.n_layers + 1


def assert_within_budget(plan: LoadPlan, hw: HardwareProfile) -> None:
    gpu = hw.best_gpu
    if gpu is not None and gpu.unified_memory:
        assert plan.est_vram_bytes <= vram_budget(gpu)
        assert plan.est_ram_bytes + plan.est_vram_bytes <= ram_budget(hw)
    else:
        assert plan.est_ram_bytes <= ram_budget(hw)
        if plan.est_vram_bytes:
            assert gpu is not None and plan.est_vram_bytes <= vram_budget(gpu)


# ---- the formula ------------------------------------------------------------------------------


def test_gpt_oss_kv_cache_is_24_kib_per_token_for_the_full_layers() -> None:
    per_token = (kv_bytes(GPT_OSS_20B, 65536) - kv_bytes(GPT_OSS_20B, 32768)) / 32768
    assert per_token == 24 * KIB  # 12 layers * 8 heads * (64 + 64) * 2 bytes
    assert kv_bytes(GPT_OSS_20B, 131072) == pytest.approx(3 * GIB, rel=0.01)


def test_sliding_window_layers_keep_a_small_pool_unless_swa_full() -> None:
    assert kv_cells(GPT_OSS_20B, 16384, 512, swa_full=False) == (16384, 768)  # pad256(128 + 512)
    assert kv_cells(GPT_OSS_20B, 16384, 512, swa_full=True) == (16384, 16384)
    assert kv_cells(GEMMA3_270M, 16384, 512, swa_full=False) == (16384, 1024)
    assert kv_cells(GEMMA3_270M, 512, 512, swa_full=False) == (512, 512)
    # swa_full doubles gpt-oss's cache (half its layers slide): 48 KiB per token.
    assert kv_bytes(GPT_OSS_20B, 8192, swa_full=True) == 8192 * 48 * KIB
    # llama.cpp measured 72 MiB for Gemma 3 270M at 4096 with swa_full, 63 MiB at 16K without.
    assert kv_bytes(GEMMA3_270M, 4096, swa_full=True) == 72 * MIB
    assert kv_bytes(GEMMA3_270M, 16384, swa_full=False) == 63 * MIB


def test_q8_0_cache_is_about_half() -> None:
    f16 = kv_bytes(GPT_OSS_20B, 32768, "f16", "f16")
    q8 = kv_bytes(GPT_OSS_20B, 32768, "q8_0", "q8_0")
    assert q8 == pytest.approx(f16 * 34 / 64, rel=1e-6)
    with pytest.raises(ValueError):
        kv_bytes(GPT_OSS_20B, 1024, "q3_k", "f16")


def test_cpu_with_mmap_counts_weights_about_twice() -> None:
    """DESIGN.md: 21.7 GB resident with mmap, 12.0 GB without, for gpt-oss-20b on the CPU."""
    mapped = estimate_memory(GPT_OSS_20B, 4096, 0, use_mmap=True, swa_full=True)
    read = estimate_memory(GPT_OSS_20B, 4096, 0, use_mmap=False, swa_full=True)
    assert read.weights_ram == GPT_OSS_20B.tensor_bytes and read.weights_mapped == 0
    assert mapped.weights_mapped == GPT_OSS_20B.tensor_bytes
    assert 1.8 < (mapped.weights_ram + mapped.weights_mapped) / read.weights_ram < 2.0
    assert mapped.ram / 1e9 == pytest.approx(21.7, rel=0.15)
    assert read.ram / 1e9 == pytest.approx(12.0 + 0.3, rel=0.1)


def test_full_offload_puts_layers_and_cache_on_the_gpu() -> None:
    est = estimate_memory(GPT_OSS_20B, 32768, ALL_LAYERS, swa_full=True, use_mmap=True, flash_attn=True)
    assert est.weights_vram == GPT_OSS_20B.tensor_bytes - 615_000_000  # all but token_embd
    assert est.kv_ram == 0 and est.kv_vram == kv_bytes(GPT_OSS_20B, 32768, swa_full=True)
    assert est.weights_ram == 0 and est.weights_mapped == 615_000_000
    assert est.ram < 1 * GIB
    # the GPU reserves a full micro-batch of logits: 201,088 * 512 * 4 bytes
    assert est.compute_vram >= 201088 * 512 * 4


def test_compute_buffer_matches_llama_cpp_measurements() -> None:
    """Reserved sizes logged by llama.cpp 0.3.36 (CPU) for the 2-layer gpt-oss stand-in and Gemma."""
    standin = replace(GPT_OSS_20B, n_layers=2, n_swa_layers=1, tensor_bytes=2_136_000_000)
    for n_ctx, fa, logged_mib in ((4096, False, 565.76), (16384, False, 2148.89), (16384, True, 409.63)):
        est = estimate_memory(standin, n_ctx, 0, swa_full=True, flash_attn=fa)
        assert est.compute_ram_reserved / MIB == pytest.approx(logged_mib, rel=0.02)
    est = estimate_memory(GEMMA3_270M, 4096, 0, swa_full=True)
    assert est.compute_ram_reserved / MIB == pytest.approx(514.5, rel=0.02)


def test_flash_attention_saves_the_attention_scores_on_the_cpu() -> None:
    without = estimate_memory(GPT_OSS_20B, 16384, 0, swa_full=True, use_mmap=False)
    with_fa = estimate_memory(GPT_OSS_20B, 16384, 0, swa_full=True, use_mmap=False, flash_attn=True)
    # 64 heads * 16384 * 512 * 4 bytes of scores, plus the CPU's f16 copy of them
    assert without.compute_ram - with_fa.compute_ram > 2.5 * GIB


# ---- simulated machines -----------------------------------------------------------------------


def test_16_gb_nvidia_holds_all_layers() -> None:
    plan = plan_load(RTX_4080, GPT_OSS_20B)
    assert plan.fits and plan.device == "cuda"
    assert plan.n_gpu_layers == ALL_LAYERS == plan.n_layers_total
    assert plan.flash_attn is True
    assert plan.use_mmap is True
    assert plan.swa_full is True
    assert 8192 <= plan.n_ctx <= 65536
    assert plan.reason == (
        f"CUDA on NVIDIA GeForce RTX 4080 (16 GB): all 25 layers on the GPU, context {plan.n_ctx:,} tokens."
    )
    assert_within_budget(plan, RTX_4080)


def test_24_gb_nvidia_gets_a_larger_context_than_16_gb() -> None:
    plan16 = plan_load(RTX_4080, GPT_OSS_20B)
    plan24 = plan_load(RTX_3090, GPT_OSS_20B)
    assert plan24.n_gpu_layers == ALL_LAYERS
    assert plan24.n_ctx > plan16.n_ctx
    assert plan24.n_ctx <= GPT_OSS_20B.n_ctx_train
    assert_within_budget(plan24, RTX_3090)


def test_8_gb_nvidia_splits_the_model() -> None:
    plan = plan_load(RTX_3070, GPT_OSS_20B)
    assert plan.fits and plan.device == "cuda"
    assert 1 <= plan.n_gpu_layers < ALL_LAYERS
    assert plan.n_ctx == 8192
    assert plan.use_mmap is False  # the CPU half is repacked: mmap would hold it twice
    assert re.fullmatch(
        r"CUDA on NVIDIA GeForce RTX 3070 \(8 GB\): \d+ of 25 layers on the GPU, the rest on the CPU; "
        r"context 8,192 tokens\.",
        plan.reason,
    ), plan.reason
    assert_within_budget(plan, RTX_3070)
    # one layer more would not fit
    more = estimate_memory(
        GPT_OSS_20B, plan.n_ctx, plan.n_gpu_layers + 1, swa_full=True, use_mmap=False, flash_attn=True
    )
    assert more.vram > vram_budget(RTX_3070.gpus[0])


def test_cpu_only_24_gb_runs_with_at_least_8k() -> None:
    plan = plan_load(CPU_24GB, GPT_OSS_20B)
    assert plan.fits and plan.device == "cpu" and plan.n_gpu_layers == 0
    assert 8192 <= plan.n_ctx <= CPU_DEFAULT_CTX
    assert plan.use_mmap is False
    assert plan.flash_attn is True  # leaner and no slower on the CPU too (planner.CPU_FLASH_ATTN)
    assert plan.n_threads == 2 and plan.n_threads_batch == 2
    assert plan.reason == f"CPU only (no supported GPU), {plan.n_ctx:,}-token context, 2 threads."
    assert_within_budget(plan, CPU_24GB)


def test_cpu_only_8_gb_is_refused_with_a_clear_reason() -> None:
    plan = plan_load(CPU_8GB, GPT_OSS_20B)
    assert plan.fits is False
    m = re.fullmatch(
        r"gpt-oss-20b needs about (\d+\.\d) GB of memory; this machine has (\d+\.\d) GB available\.", plan.reason
    )
    assert m, plan.reason
    # Decimal GB, the unit every screen uses (app.core.units): 12.0–13.5 GiB, 6.0 GiB available.
    assert 12.0 * 1.074 <= float(m.group(1)) <= 13.5 * 1.074
    assert float(m.group(2)) == 6.4
    assert step_down(plan, CPU_8GB, GPT_OSS_20B) is None


def test_apple_m1_16_gb_cannot_hold_it_all_in_the_working_set() -> None:
    hw = M1_16GB
    assert hw.gpus[0].vram_total < GPT_OSS_20B.tensor_bytes
    plan = plan_load(hw, GPT_OSS_20B)
    assert plan.fits
    assert plan.n_gpu_layers < ALL_LAYERS
    if plan.n_gpu_layers:
        assert plan.device == "metal"
        assert plan.reason.startswith(
            f"Metal on Apple M1 GPU (11 GB of unified memory usable): {plan.n_gpu_layers} of 25 layers on the GPU"
        )
    assert_within_budget(plan, hw)
    # with less memory free it is refused rather than swapping the machine to death
    crowded = replace(hw, ram_available=int(10 * GIB))
    refused = plan_load(crowded, GPT_OSS_20B)
    assert refused.fits is False and "needs about" in refused.reason


def test_apple_m3_max_holds_everything_with_a_big_context() -> None:
    plan = plan_load(M3_MAX_64GB, GPT_OSS_20B)
    assert plan.fits and plan.device == "metal"
    assert plan.n_gpu_layers == ALL_LAYERS
    assert plan.n_ctx >= 65536
    assert plan.use_mmap is True  # Metal maps the file as GPU memory: no copy
    assert plan.reason.startswith(
        "Metal on Apple M3 Max GPU (48 GB of unified memory usable): all 25 layers on the GPU"
    )
    assert_within_budget(plan, M3_MAX_64GB)


def test_a_gpu_build_without_offload_support_runs_on_the_cpu() -> None:
    hw = replace(RTX_4080, gpu_offload_supported=False)
    plan = plan_load(hw, GPT_OSS_20B)
    assert plan.fits and plan.n_gpu_layers == 0 and plan.device == "cpu"
    assert plan.flash_attn is True
    assert "this llama.cpp build has no GPU support" in plan.reason


def test_a_gpu_too_small_for_one_layer_falls_back_to_the_cpu() -> None:
    hw = machine(32, 26, (nvidia("NVIDIA GeForce GT 1030", 2, 1.2),))
    plan = plan_load(hw, GPT_OSS_20B)
    assert plan.fits and plan.n_gpu_layers == 0
    assert "NVIDIA GeForce GT 1030 has too little free memory" in plan.reason


def test_ctx_cap_and_min_ctx() -> None:
    assert plan_load(RTX_3090, GPT_OSS_20B, ctx_cap=8192).n_ctx == 8192
    assert plan_load(RTX_3090, GPT_OSS_20B, ctx_cap=10000).n_ctx == 9984  # multiple of 256
    assert plan_load(CPU_24GB, GPT_OSS_20B, ctx_cap=4096).n_ctx == 4096
    # on the CPU a ctx_cap above the speed default is honoured when it fits
    assert plan_load(CPU_24GB, GPT_OSS_20B, ctx_cap=32768).n_ctx == 32768
    tight = machine(16, 13.6, physical=4, logical=8)
    assert plan_load(tight, GPT_OSS_20B).fits
    assert not plan_load(tight, GPT_OSS_20B, min_ctx=65536, ctx_cap=131072).fits


def test_small_context_model() -> None:
    tiny = replace(GEMMA3_270M, n_ctx_train=1024)
    plan = plan_load(CPU_24GB, tiny)
    assert plan.fits and plan.n_ctx == 1024
    assert plan.n_batch <= plan.n_ctx and plan.n_ubatch <= plan.n_batch


def test_small_model_on_cpu_keeps_mmap() -> None:
    plan = plan_load(CPU_24GB, GEMMA3_270M)
    assert plan.fits and plan.use_mmap is True
    assert plan.n_ctx == CPU_DEFAULT_CTX
    assert plan.swa_full is True


def test_model_without_sliding_window() -> None:
    dense = replace(GPT_OSS_20B, sliding_window=0, n_swa_layers=0, name="dense")
    assert plan_load(CPU_24GB, dense).swa_full is False
    assert kv_bytes(dense, 1024) == 24 * 1024 * 8 * 128 * 2


@pytest.mark.parametrize(
    ("physical", "logical", "expected"),
    [(8, 16, (8, 16)), (2, 2, (2, 2)), (6, 6, (6, 6)), (0, 0, (1, 1)), (1, 4, (1, 4))],
)
def test_threads(physical: int, logical: int, expected: tuple[int, int]) -> None:
    hw = machine(23.5, 22.3, physical=physical, logical=logical)
    plan = plan_load(hw, GEMMA3_270M)
    assert (plan.n_threads, plan.n_threads_batch) == expected


def test_estimates_are_recorded_on_the_plan() -> None:
    plan = plan_load(RTX_3070, GPT_OSS_20B)
    assert plan.memory is not None
    assert plan.est_ram_bytes == plan.memory.ram and plan.est_vram_bytes == plan.memory.vram


# ---- step_down --------------------------------------------------------------------------------


def test_step_down_from_full_offload() -> None:
    plan = plan_load(RTX_4080, GPT_OSS_20B)
    seen: list[LoadPlan] = []
    current: LoadPlan | None = plan
    while current is not None:
        seen.append(current)
        current = step_down(current, RTX_4080, GPT_OSS_20B)
    layers = [p.n_gpu_layers for p in seen]
    assert layers[:3] == [25, 18, 13]  # a quarter fewer each time
    assert layers == sorted(layers, reverse=True)
    assert seen[1].reason == (
        f"Retried with 18 of 25 layers on the GPU after running out of GPU memory; context {plan.n_ctx:,} tokens."
    )
    cpu = next(p for p in seen if p.n_gpu_layers == 0)
    assert cpu.device == "cpu" and cpu.n_ctx <= CPU_DEFAULT_CTX
    assert cpu.reason.startswith("Retried on the CPU only after running out of GPU memory")
    # then the cache gets smaller: 8-bit first (flash attention is required for it) ...
    q8 = seen[seen.index(cpu) + 1]
    assert (q8.type_k, q8.type_v, q8.n_ctx, q8.flash_attn) == ("q8_0", "q8_0", cpu.n_ctx, True)
    assert "8-bit KV cache" in q8.reason
    # ... then the context halves down to min_ctx, and then there is nothing left
    ctxs = [p.n_ctx for p in seen[seen.index(q8) :]]
    assert ctxs == [cpu.n_ctx // 2**i for i in range(len(ctxs))]
    assert ctxs[-1] == 2048
    assert "smaller context" in seen[-1].reason
    assert all(p.fits for p in seen)


def test_step_down_on_the_cpu() -> None:
    plan = plan_load(CPU_24GB, GPT_OSS_20B)
    q8 = step_down(plan, CPU_24GB, GPT_OSS_20B)
    assert q8 is not None and q8.type_k == "q8_0" and q8.n_ctx == plan.n_ctx
    assert q8.est_ram_bytes < plan.est_ram_bytes
    half = step_down(q8, CPU_24GB, GPT_OSS_20B)
    assert half is not None and half.n_ctx == plan.n_ctx // 2
    assert half.reason == f"Retried with a smaller context after running out of memory; context {half.n_ctx:,} tokens."
    last = half
    while (nxt := step_down(last, CPU_24GB, GPT_OSS_20B, min_ctx=4096)) is not None:
        last = nxt
    assert last.n_ctx == 4096


def test_step_down_keeps_the_gpu_for_the_cache_steps_when_ram_is_short() -> None:
    """With little RAM, moving layers off the GPU cannot help: the cache shrinks instead."""
    hw = machine(16, 4, (nvidia("NVIDIA GeForce RTX 4090", 24, 23),))
    plan = plan_load(hw, GPT_OSS_20B)
    assert plan.n_gpu_layers == ALL_LAYERS
    smaller = step_down(plan, hw, GPT_OSS_20B)
    assert smaller is not None
    assert smaller.n_gpu_layers == ALL_LAYERS and smaller.type_k == "q8_0"
    assert smaller.device == "cuda"


def test_gpu_layers_chosen_in_the_model_settings_replace_the_planners() -> None:
    from app.core.planner import with_gpu_layers

    plan = plan_load(CPU_24GB, GPT_OSS_20B)
    assert plan.n_gpu_layers == 0
    chosen = with_gpu_layers(plan, 99)
    assert chosen.n_gpu_layers == plan.n_layers_total == 25
    assert chosen.reason.startswith(plan.reason) and chosen.reason.endswith("25 of 25 layers on the GPU.")
    assert with_gpu_layers(plan, -3).n_gpu_layers == 0
