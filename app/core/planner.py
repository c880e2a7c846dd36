"""Turn hardware + GGUF metadata into a LoadPlan with a sentence that explains it.

`plan_load(hw, model, ctx_cap=None)` picks where the layers go (GPU, split, CPU), the context
size, threads and cache types; `step_down(plan, hw, model)` gives the next smaller plan after an
out-of-memory failure; `estimate_memory(...)` is the byte breakdown both are built on.

Memory model (calibrated against llama.cpp as built by llama-cpp-python 0.3.36 on x86-64; see
tests/e2e/test_planner_memory.py, which loads real models and compares):

* Weights: tensor bytes. The vocabulary matrices (token_embd, output) are
  `model.output_tensor_bytes`, assumed half each; the rest is split evenly over the repeating
  layers. token_embd always stays in RAM; `n_gpu_layers = k` puts the output matrix plus the
  last k-1 repeating layers on the GPU (llama.cpp's convention; k = n_layers + 1 is all of it).
* llama.cpp repacks the quantized matmul weights of some types that stay on the CPU (MXFP4, Q4_0,
  Q4_K, IQ4_NL: `ModelInfo.repacked_bytes`) into anonymous memory. With mmap the file pages stay
  resident too, so those weights count twice: gpt-oss-20b on the CPU shows 21.7 GB resident with
  mmap and 12.0 GB without (DESIGN.md). Q5_0, Q6_K and Q8_0 weights are used in place (Gemma 3
  270M Q4_K_M: 13 of its 65 MiB of layer weights are repacked).
* KV cache: per layer and cell n_head_kv * (head_dim_k * bytes(type_k) + head_dim_v *
  bytes(type_v)). Full-attention layers hold n_ctx cells; sliding-window layers
  pad256(min(n_ctx, window + n_ubatch)) cells, or n_ctx with swa_full. llama.cpp pads n_ctx to
  256. gpt-oss-20b at f16: 12 full layers * 8 * 128 * 2 B = 24 KiB per token.
* Compute buffer (what llama.cpp reserves for the worst-case micro-batch of u = n_ubatch
  tokens, all f32) is the largest of:
    logits      n_vocab * u * 4 + 3 * n_embd * u * 4
    attention   [no flash attention: n_head * n_kv * u * 4 for the KQ scores]
                + masks: n_kv_cells * u * 4 (2 with flash attention) per cache (full, SWA)
                + u * 4 * (2 * n_embd + 3 * n_head * head_dim)  (Q/K/V and their ropes)
    ffn         dense: 12 * n_embd * u * 4 (assumes n_ff ~ 4 * n_embd; rarely the largest)
                MoE: 4.5 * n_embd * n_experts_used * u * 4 (gate/up/act/down per used expert,
                assuming the expert width ~ n_embd as in gpt-oss; measured 99 MiB, est. 101)
  Measured on the CPU: gpt-oss (2-layer stand-in) 565.8 / 2148.9 / 409.6 MiB at 4K no-FA /
  16K no-FA / 16K FA against 564 / 2148 / 410 estimated; Gemma 3 270M 514.5 against 515.8.
  In RAM only what a real run touches becomes resident: llama-cpp-python asks for the logits
  of one token, so the resident compute is the attention part and the ffn part (both: measured,
  the pages of both stay resident as the context fills; Gemma 3 was 2.4-3.5 % under with only
  the larger of the two) or one logits row, whichever is more.
  Without flash attention the CPU backend also converts the attention probabilities to f16
  in its work buffer (outside the compute buffer): half the scores again, resident as the
  context fills (measured: 96 MiB per 512 tokens of context for gpt-oss, 64 of them scores).
  On a GPU the whole reservation is committed, so VRAM counts all of it.
* Overhead: the vocabulary (token texts, maps, one output row) about 194 bytes per token
  (measured: 50 MB for Gemma's 262,144 tokens, 38 MB for gpt-oss's 201,088), plus what any load
  costs (llama.cpp's tensor and graph metadata, the backend's code pages): 7 MiB, measured with
  the tiny gpt-oss, whose weights and vocabulary are next to nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from app.core.gguf_file import ModelInfo
from app.core.hardware import GpuInfo, HardwareProfile

MIB = 1024**2
GIB = 1024**3

DEFAULT_UBATCH = 512
CPU_BATCH = 512
GPU_BATCH = 2048
CPU_DEFAULT_CTX = 16384  # CPU prompt processing is slow (~11 tok/s for gpt-oss-20b on 2 cores)
PARTIAL_DEFAULT_CTX = 8192  # a split model is bound by the CPU part; keep the cache moderate
FALLBACK_CTX_TRAIN = 4096  # GGUFs without a context length

# Keep back some RAM for the app, the OS and the rest of the desktop.
RAM_MARGIN_FIXED = 512 * MIB
RAM_MARGIN_FRACTION = 0.05
# NVML's free VRAM does not include the CUDA context (~300-500 MB) nor fragmentation.
VRAM_MARGIN_FIXED = 300 * MIB
VRAM_MARGIN_FRACTION = 0.10
# Above this share of RAM, CPU-resident weights are loaded without mmap (see _choose_mmap).
MMAP_MAX_RAM_FRACTION = 0.10

VOCAB_OVERHEAD_PER_TOKEN = 194  # bytes: token texts + maps + one row of logits (measured)
LOAD_OVERHEAD = 7 * MIB  # any load, whatever the model (see the module docstring)

_TYPE_BYTES: dict[str, float] = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q5_1": 24 / 32,
    "q5_0": 22 / 32,
    "q4_1": 20 / 32,
    "q4_0": 18 / 32,
    "iq4_nl": 18 / 32,
}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a load needs, by kind and place. `ram` is the expected resident set growth."""

    weights_ram: int  # weights in anonymous memory (no-mmap loads, CPU repack copies)
    weights_mapped: int  # weight file pages resident through mmap (reclaimable, but in RSS)
    weights_vram: int
    kv_ram: int
    kv_vram: int
    compute_ram: int  # the part of the CPU compute buffer a real run touches (at full context)
    compute_ram_reserved: int  # what llama.cpp reserves for it (virtual until touched)
    compute_vram: int  # committed on the GPU at load
    overhead_ram: int  # vocabulary tables etc.

    @property
    def ram(self) -> int:
        return self.weights_ram + self.weights_mapped + self.kv_ram + self.compute_ram + self.overhead_ram

    @property
    def vram(self) -> int:
        return self.weights_vram + self.kv_vram + self.compute_vram

    @property
    def total(self) -> int:
        return self.ram + self.vram


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
    n_layers_total: int = 0  # model.n_layers + 1, the unit n_gpu_layers counts in
    memory: MemoryEstimate | None = None  # the breakdown behind est_*_bytes


# ---- the estimate ------------------------------------------------------------------------------


def _pad256(n: int) -> int:
    return (n + 255) // 256 * 256


def _type_bytes(name: str) -> float:
    try:
        return _TYPE_BYTES[name.lower()]
    except KeyError:
        raise ValueError(f"unsupported KV cache type {name!r}") from None


def kv_cells(model: ModelInfo, n_ctx: int, n_ubatch: int, swa_full: bool) -> tuple[int, int]:
    """(cells of a full-attention layer, cells of a sliding-window layer), as llama.cpp sizes them."""
    full = _pad256(n_ctx)
    if model.sliding_window <= 0 or model.n_swa_layers <= 0 or swa_full:
        return full, full
    return full, min(full, _pad256(model.sliding_window + n_ubatch))


def _layer_counts(model: ModelInfo) -> tuple[int, int]:
    """(full-attention layers, sliding-window layers)."""
    n_swa = min(model.n_swa_layers, model.n_layers) if model.sliding_window > 0 else 0
    return model.n_layers - n_swa, n_swa


def kv_bytes(
    model: ModelInfo,
    n_ctx: int,
    type_k: str = "f16",
    type_v: str = "f16",
    *,
    swa_full: bool = False,
    n_ubatch: int = DEFAULT_UBATCH,
) -> int:
    """KV cache bytes for the whole model (all layers)."""
    per_cell = model.n_head_kv * (model.head_dim_k * _type_bytes(type_k) + model.head_dim_v * _type_bytes(type_v))
    full_cells, swa_cells = kv_cells(model, n_ctx, n_ubatch, swa_full)
    n_full, n_swa = _layer_counts(model)
    return int(per_cell * (n_full * full_cells + n_swa * swa_cells))


def _weights_split(model: ModelInfo) -> tuple[float, float, float]:
    """(token_embd bytes, output matrix bytes, bytes of one repeating layer)."""
    vocab = min(max(model.output_tensor_bytes, 0), model.tensor_bytes)
    embd = out = vocab / 2
    layer = (model.tensor_bytes - vocab) / max(model.n_layers, 1)
    return embd, out, layer


@dataclass(frozen=True)
class _ComputeTerms:
    attention: int  # scores (without flash attention) + masks + Q/K/V
    attention_work: int  # CPU work buffer: the f16 copy of the scores (no flash attention)
    mask: int  # the KQ masks alone (built on the host, then copied)
    logits: int  # a full micro-batch of logits, as llama.cpp reserves
    logits_one_row: int  # what llama-cpp-python really asks for (the last token)
    ffn: int


def _compute_terms(model: ModelInfo, n_ctx: int, n_ubatch: int, swa_full: bool, flash_attn: bool) -> _ComputeTerms:
    u = n_ubatch
    full_cells, swa_cells = kv_cells(model, n_ctx, u, swa_full)
    n_full, n_swa = _layer_counts(model)
    cells = ([full_cells] if n_full else []) + ([swa_cells] if n_swa else [])
    mask = sum(cells) * u * (2 if flash_attn else 4)
    scores = 0 if flash_attn else model.n_head * max(cells, default=0) * u * 4
    qkv = u * 4 * (2 * model.n_embd + 3 * model.n_head * model.head_dim_k)
    hidden = 3 * model.n_embd * u * 4
    return _ComputeTerms(
        attention=scores + mask + qkv,
        attention_work=scores // 2,
        mask=mask,
        logits=model.n_vocab * u * 4 + hidden,
        logits_one_row=model.n_vocab * 4 + hidden,
        ffn=(
            int(4.5 * model.n_embd * model.n_experts_used * u * 4)
            if model.n_experts_used > 0
            else 12 * model.n_embd * u * 4
        ),
    )


def estimate_memory(
    model: ModelInfo,
    n_ctx: int,
    n_gpu_layers: int = 0,
    type_k: str = "f16",
    type_v: str = "f16",
    swa_full: bool = False,
    use_mmap: bool = True,
    *,
    n_ubatch: int = DEFAULT_UBATCH,
    flash_attn: bool = False,
) -> MemoryEstimate:
    """Bytes llama.cpp needs to load `model` this way (module docstring: the formula)."""
    n_layers = max(model.n_layers, 1)
    k = max(0, min(n_gpu_layers, n_layers + 1))
    output_on_gpu = k >= 1
    layers_gpu = max(k - 1, 0)
    layers_cpu = n_layers - layers_gpu
    embd, out, layer = _weights_split(model)

    weights_cpu = embd + layers_cpu * layer + (0 if output_on_gpu else out)
    weights_vram = layers_gpu * layer + (out if output_on_gpu else 0)
    if use_mmap:
        weights_mapped = weights_cpu
        repacked = model.repacked_bytes / n_layers if model.repacked_bytes >= 0 else layer
        weights_ram = layers_cpu * min(repacked, layer)  # the repacked copies (see the docstring)
    else:
        weights_mapped = 0
        weights_ram = weights_cpu

    kv = kv_bytes(model, n_ctx, type_k, type_v, swa_full=swa_full, n_ubatch=n_ubatch)
    kv_vram = kv * layers_gpu // n_layers
    kv_ram = kv - kv_vram

    c = _compute_terms(model, n_ctx, n_ubatch, swa_full, flash_attn)
    if not output_on_gpu:  # everything on the CPU
        compute_ram_reserved = max(c.attention, c.logits, c.ffn)
        compute_ram = max(c.attention + c.attention_work + c.ffn, c.logits_one_row)
        compute_vram = 0
    else:
        # The GPU reserves the worst case; with a split, llama.cpp also copies a CPU layer's
        # weights to the GPU for big batches (op offload), so one layer more.
        compute_vram = max(c.attention, c.logits, c.ffn) + round(layer if layers_cpu else 0)
        if layers_cpu:
            compute_ram_reserved = max(c.attention, c.ffn)
            compute_ram = c.attention + c.attention_work + c.ffn
        else:  # host side: the inputs only (embeddings, positions, masks)
            compute_ram_reserved = compute_ram = 2 * model.n_embd * n_ubatch * 4 + c.mask

    return MemoryEstimate(
        weights_ram=round(weights_ram),
        weights_mapped=round(weights_mapped),
        weights_vram=round(weights_vram),
        kv_ram=int(kv_ram),
        kv_vram=int(kv_vram),
        compute_ram=round(compute_ram),
        compute_ram_reserved=round(compute_ram_reserved),
        compute_vram=round(compute_vram),
        overhead_ram=int(VOCAB_OVERHEAD_PER_TOKEN * model.n_vocab) + LOAD_OVERHEAD,
    )


# ---- planning ----------------------------------------------------------------------------------


def _gb(n: int | float) -> str:
    from app.core.units import format_bytes

    return format_bytes(n)


def _gpu_label(gpu: GpuInfo) -> str:
    if gpu.unified_memory:
        return f"{gpu.name} ({round(gpu.vram_total / GIB)} GB of unified memory usable)"
    return f"{gpu.name} ({max(1, round(gpu.vram_total / GIB))} GB)"


BACKEND_LABELS = {"cuda": "CUDA", "vulkan": "Vulkan", "metal": "Metal", "rocm": "ROCm"}


def _on_gpu(gpu: GpuInfo) -> str:
    """ "Vulkan on AMD Radeon RX 7800 XT (16 GB)": the backend the chosen llama.cpp build runs on, and the device."""
    return f"{BACKEND_LABELS.get(gpu.backend, 'GPU')} on {_gpu_label(gpu)}"


def _threads(hw: HardwareProfile) -> tuple[int, int]:
    """Generation is memory-bound: one thread per physical core (hyper-threads only contend);
    prompt processing is compute-bound and gains from every logical core."""
    physical = max(1, hw.physical_cores)
    return physical, max(physical, hw.logical_cores)


def ram_budget(hw: HardwareProfile) -> int:
    return int(hw.ram_available - RAM_MARGIN_FIXED - RAM_MARGIN_FRACTION * hw.ram_total)


def vram_budget(gpu: GpuInfo) -> int:
    return int(gpu.vram_free - VRAM_MARGIN_FIXED - VRAM_MARGIN_FRACTION * gpu.vram_total)


def _choose_mmap(model: ModelInfo, hw: HardwareProfile, n_gpu_layers: int) -> bool:
    """mmap unless the weights that stay on the CPU are big relative to RAM.

    llama.cpp repacks CPU-side quantized weights into anonymous memory; with mmap their file
    pages stay resident as well (gpt-oss-20b on the CPU: 21.7 GB resident with mmap, 12.0 GB
    without), and under pressure the kernel then evicts everything else first. For a model
    that is a small share of RAM that costs nothing and mmap keeps reloads cheap; for a big one
    a plain read is the smaller, predictable footprint. With every layer on the GPU only
    token_embd stays on the CPU (not repacked) and mmap is the better choice; Metal on Apple
    Silicon even uses the mapped file directly as GPU memory.
    """
    est = estimate_memory(model, 256, n_gpu_layers, use_mmap=False)
    return est.weights_ram <= MMAP_MAX_RAM_FRACTION * hw.ram_total


def _ctx_top(model: ModelInfo, ctx_cap: int | None) -> int:
    top = model.n_ctx_train if model.n_ctx_train > 0 else FALLBACK_CTX_TRAIN
    if ctx_cap is not None and ctx_cap > 0:
        top = min(top, ctx_cap)
    return max(256, top // 256 * 256)


def _ctx_ladder(top: int, min_ctx: int) -> list[int]:
    """top, then the powers of two below it, down to min_ctx (or just top if that is smaller)."""
    ladder = [top]
    p = 1 << (top.bit_length() - 1)
    if p == top:
        p //= 2
    while p >= min_ctx:
        ladder.append(p)
        p //= 2
    return [c for c in ladder if c >= min(min_ctx, top)]


@dataclass(frozen=True)
class _Candidate:
    n_gpu_layers: int
    n_ctx: int
    flash_attn: bool
    use_mmap: bool
    type_kv: str
    est: MemoryEstimate


def _candidate(
    model: ModelInfo,
    hw: HardwareProfile,
    n_gpu_layers: int,
    n_ctx: int,
    flash_attn: bool,
    type_kv: str = "f16",
) -> _Candidate:
    n_ubatch = min(DEFAULT_UBATCH, n_ctx)
    use_mmap = _choose_mmap(model, hw, n_gpu_layers)
    est = estimate_memory(
        model,
        n_ctx,
        n_gpu_layers,
        type_kv,
        type_kv,
        model.sliding_window > 0,
        use_mmap,
        n_ubatch=n_ubatch,
        flash_attn=flash_attn,
    )
    return _Candidate(n_gpu_layers, n_ctx, flash_attn, use_mmap, type_kv, est)


def _fits(c: _Candidate, hw: HardwareProfile, gpu: GpuInfo | None) -> bool:
    if gpu is not None and gpu.unified_memory:
        # Apple Silicon: the GPU's share is part of RAM, limited to Metal's working set.
        return c.est.vram <= vram_budget(gpu) and c.est.ram + c.est.vram <= ram_budget(hw)
    if c.est.ram > ram_budget(hw):
        return False
    return c.est.vram == 0 or (gpu is not None and c.est.vram <= vram_budget(gpu))


def _fits_ram(c: _Candidate, hw: HardwareProfile, gpu: GpuInfo | None) -> bool:
    """The RAM side of _fits only (after a GPU failure the VRAM figure is what was wrong)."""
    extra = c.est.vram if gpu is not None and gpu.unified_memory else 0
    return c.est.ram + extra <= ram_budget(hw)


# Flash attention on the CPU too (as on GPUs): it is leaner, the more so the fuller the context
# (without it llama.cpp keeps the attention scores plus an f16 copy, 1.5 * n_head * n_ctx *
# n_ubatch * 4 bytes: 2.9 GiB measured for gpt-oss at 16K), and no slower (bench/flash_attention.py,
# docs/PERFORMANCE.md, 2-core build machine: prompt processing 8 % faster for Gemma 3 270M and
# the gpt-oss-20b stand-in, generation 13 % faster for Gemma and level for the stand-in, paired
# median 0.98 of 5 noisy rounds). Until 2026-12-03 it was tried off first because a restored KV
# state did not continue token for token with it; that was llama.cpp's search head after a
# whole-context restore (engine/llama._restore_state), now exact either way. Off never fits
# where on does not, so on is the only choice.
CPU_FLASH_ATTN = True


def _make_plan(c: _Candidate, hw: HardwareProfile, model: ModelInfo, gpu: GpuInfo | None, reason: str) -> LoadPlan:
    n_threads, n_threads_batch = _threads(hw)
    on_gpu = c.n_gpu_layers > 0 and gpu is not None
    return LoadPlan(
        n_gpu_layers=c.n_gpu_layers,
        n_ctx=c.n_ctx,
        n_batch=min(GPU_BATCH if on_gpu else CPU_BATCH, c.n_ctx),
        n_ubatch=min(DEFAULT_UBATCH, c.n_ctx),
        n_threads=n_threads,
        n_threads_batch=n_threads_batch,
        flash_attn=c.flash_attn,
        type_k=c.type_kv,
        type_v=c.type_kv,
        use_mmap=c.use_mmap,
        swa_full=model.sliding_window > 0,
        device=gpu.backend if on_gpu and gpu is not None else "cpu",
        fits=True,
        reason=reason,
        est_ram_bytes=c.est.ram,
        est_vram_bytes=c.est.vram,
        n_layers_total=model.n_layers + 1,
        memory=c.est,
    )


def _usable_gpu(hw: HardwareProfile) -> GpuInfo | None:
    return hw.best_gpu if hw.gpu_offload_supported else None


def _max_gpu_layers(model: ModelInfo, hw: HardwareProfile, gpu: GpuInfo, n_ctx: int, limit: int) -> _Candidate | None:
    """The split with the most layers (at most `limit`, at least 1) that fits, or None."""
    for k in range(min(limit, model.n_layers + 1), 0, -1):
        c = _candidate(model, hw, k, n_ctx, flash_attn=True)
        if _fits(c, hw, gpu):
            return c
    return None


def _ctx_words(n_ctx: int) -> str:
    return f"context {n_ctx:,} tokens"


def _cpu_reason(hw: HardwareProfile, gpu_note: str, c: _Candidate) -> str:
    threads = _threads(hw)[0]
    kv = ", 8-bit KV cache" if c.type_kv != "f16" else ""
    return f"CPU only ({gpu_note}), {c.n_ctx:,}-token context{kv}, {threads} thread{'s' if threads != 1 else ''}."


def _why_cpu(hw: HardwareProfile) -> str:
    if not hw.gpu_offload_supported and hw.llama_build_reason.startswith("CPU: "):
        return hw.llama_build_reason[len("CPU: ") :].rstrip(".")  # llama_builds says why no GPU build runs
    if not hw.gpus:
        return "no supported GPU"
    if not hw.gpu_offload_supported:
        return "this llama.cpp build has no GPU support"
    gpu = hw.best_gpu
    assert gpu is not None
    if gpu.unified_memory:
        return f"too little unified memory to spare for the {gpu.name}"
    return f"the {gpu.name} has too little free memory"


def plan_load(hw: HardwareProfile, model: ModelInfo, ctx_cap: int | None = None, *, min_ctx: int = 2048) -> LoadPlan:
    """The fastest way to run `model` on `hw` that fits, with a sentence saying what was chosen.

    GPU with room for everything: all layers there and the largest context that fits (up to
    the model's and ctx_cap's limits). GPU too small: as many layers as fit at a moderate
    context. Otherwise the CPU, with a context capped for speed unless ctx_cap asks for more.
    """
    total_layers = model.n_layers + 1
    top = _ctx_top(model, ctx_cap)
    gpu = _usable_gpu(hw)

    if gpu is not None:
        for n_ctx in _ctx_ladder(top, min_ctx):
            c = _candidate(model, hw, total_layers, n_ctx, flash_attn=True)
            if _fits(c, hw, gpu):
                reason = f"{_on_gpu(gpu)}: all {total_layers} layers on the GPU, {_ctx_words(n_ctx)}."
                return _make_plan(c, hw, model, gpu, reason)
        partial_top = min(top, ctx_cap if ctx_cap else PARTIAL_DEFAULT_CTX)
        for n_ctx in _ctx_ladder(max(256, partial_top // 256 * 256), min_ctx):
            split = _max_gpu_layers(model, hw, gpu, n_ctx, model.n_layers)
            if split is not None:
                reason = (
                    f"{_on_gpu(gpu)}: {split.n_gpu_layers} of {total_layers} layers on the GPU, "
                    f"the rest on the CPU; {_ctx_words(n_ctx)}."
                )
                return _make_plan(split, hw, model, gpu, reason)

    cpu_top = top if ctx_cap else min(top, CPU_DEFAULT_CTX)
    for n_ctx in _ctx_ladder(cpu_top, min_ctx):
        c = _candidate(model, hw, 0, n_ctx, flash_attn=CPU_FLASH_ATTN)
        if _fits(c, hw, None):
            return _make_plan(c, hw, model, None, _cpu_reason(hw, _why_cpu(hw), c))

    return _refusal(hw, model, gpu, min(min_ctx, top))


def _refusal(hw: HardwareProfile, model: ModelInfo, gpu: GpuInfo | None, n_ctx: int) -> LoadPlan:
    c = _candidate(model, hw, 0, n_ctx, flash_attn=True)
    needs = c.est.total + RAM_MARGIN_FIXED + RAM_MARGIN_FRACTION * hw.ram_total
    have = f"this machine has {_gb(max(hw.ram_available, 0))} available"
    if gpu is not None and not gpu.unified_memory:
        have += f" (and {_gb(max(gpu.vram_free, 0))} on the {gpu.name})"
    reason = f"{model.name or 'This model'} needs about {_gb(needs)} of memory; {have}."
    plan = _make_plan(c, hw, model, None, reason)
    return replace(plan, fits=False)


def step_down(plan: LoadPlan, hw: HardwareProfile, model: ModelInfo, *, min_ctx: int = 2048) -> LoadPlan | None:
    """The next smaller plan after `plan` ran out of memory, or None when nothing smaller is left.

    Order: fewer GPU layers (a quarter fewer each time, down to the CPU alone, whose context is
    capped for speed as in plan_load), then an 8-bit KV cache (same context, about half the
    cache), then half the context down to min_ctx. A step whose estimate does not fit in RAM is
    skipped in favour of the next kind of step.
    """
    if not plan.fits:
        return None
    total_layers = model.n_layers + 1
    gpu = _usable_gpu(hw)
    min_ctx = min(min_ctx, plan.n_ctx)
    on_gpu = plan.n_gpu_layers > 0 and gpu is not None
    layer_gpu = gpu if on_gpu else None

    if on_gpu:
        k = min(plan.n_gpu_layers - 1, plan.n_gpu_layers * 3 // 4)
        if k > 0:
            c = _candidate(model, hw, k, plan.n_ctx, flash_attn=True, type_kv=plan.type_k)
            if _fits_ram(c, hw, gpu):
                reason = (
                    f"Retried with {k} of {total_layers} layers on the GPU after running out of "
                    f"GPU memory; {_ctx_words(plan.n_ctx)}."
                )
                return _make_plan(c, hw, model, gpu, reason)
        else:
            for n_ctx in _ctx_ladder(min(plan.n_ctx, CPU_DEFAULT_CTX), min_ctx):
                c = _candidate(model, hw, 0, n_ctx, flash_attn=CPU_FLASH_ATTN, type_kv=plan.type_k)
                if _fits(c, hw, None):
                    threads = _threads(hw)[0]
                    reason = (
                        "Retried on the CPU only after running out of GPU memory; "
                        f"{_ctx_words(n_ctx)}, {threads} thread{'s' if threads != 1 else ''}."
                    )
                    return _make_plan(c, hw, model, None, reason)

    # Same layers, smaller cache. A quantized V cache needs flash attention in llama.cpp.
    if plan.type_k == "f16":
        c = _candidate(model, hw, plan.n_gpu_layers if on_gpu else 0, plan.n_ctx, True, "q8_0")
        reason = f"Retried with an 8-bit KV cache after running out of memory; {_ctx_words(plan.n_ctx)}."
        return _make_plan(c, hw, model, layer_gpu, reason)
    if plan.n_ctx > min_ctx:
        n_ctx = max(min_ctx, plan.n_ctx // 2)
        c = _candidate(model, hw, plan.n_gpu_layers if on_gpu else 0, n_ctx, plan.flash_attn, plan.type_k)
        reason = f"Retried with a smaller context after running out of memory; {_ctx_words(n_ctx)}."
        return _make_plan(c, hw, model, layer_gpu, reason)
    return None


def with_gpu_layers(plan: LoadPlan, n_gpu_layers: int) -> LoadPlan:
    """`plan` with the user's number of GPU layers (the model settings) in place of the planner's;
    the sentence says so. Capped at the model's layers; 0 means the CPU only. The engine's
    out-of-memory step-down still applies when the choice does not fit."""
    from dataclasses import replace

    n = max(0, min(n_gpu_layers, plan.n_layers_total or n_gpu_layers))
    chosen = "no layers on the GPU" if n == 0 else f"{n} of {plan.n_layers_total} layers on the GPU"
    return replace(plan, n_gpu_layers=n, reason=f"{plan.reason} Set in the model settings: {chosen}.")
