"""The planner's memory estimate against what llama.cpp really allocates on this machine.

Each case plans a load with `plan_load` on the real hardware profile, loads the model with
llama_cpp.Llama in a fresh Python process using the plan's parameters, fills the whole context
(so the attention part of the compute buffer is touched the way a long chat touches it) and
reports the growth of the resident set (anonymous and file-backed, from /proc/self/smaps_rollup)
and the buffer sizes llama.cpp logs. The estimate of the peak (the whole context in use) must be
at least what llama.cpp really took and at most 10 % more; the parts must be within +-10 %.

Models: the starter Gemma 3 270M (conftest's `starter_path`) and a 2-layer gpt-oss stand-in at
real width and vocabulary, written by ../shared/tools/make_gptoss20b_synthetic.py (~2.1 GB, under
pytest's tmp; the run fails where that tool is absent). ModelInfo comes from gguf_file.inspect_gguf;
`model_info_from_gguf` reads the same figures independently with gguf.GGUFReader, to pin the
conventions the planner relies on (output_tensor_bytes = token_embd + output, SWA layer counts).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from app.core.gguf_file import ModelInfo, inspect_gguf
from app.core.hardware import probe
from app.core.planner import LoadPlan, estimate_memory, kv_bytes, plan_load

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")]

TOLERANCE = 0.10
CTX_CAP = 4096  # keeps filling the whole context to well under a minute per load
SYNTHETIC_TOOL = Path(__file__).resolve().parents[3] / "shared" / "tools" / "make_gptoss20b_synthetic.py"
MIB = 1024**2


# ---- ModelInfo from a GGUF (stand-in for gguf_file.inspect_gguf) -------------------------------

# Which layers use the sliding window, per architecture (llama.cpp's swa patterns).
_SWA_LAYERS = {
    "gemma3": lambda n: sum(1 for il in range(n) if (il + 1) % 6 != 0),  # 5 of every 6
    "gpt-oss": lambda n: sum(1 for il in range(n) if il % 2 == 0),  # every other one
}


def model_info_from_gguf(path: Path) -> ModelInfo:
    import gguf

    reader = gguf.GGUFReader(str(path))

    def field(key: str, default: Any = None) -> Any:
        f = reader.fields.get(key)
        if f is None:
            return default
        value = f.contents()
        return value

    arch = str(field("general.architecture"))
    n_layers = int(field(f"{arch}.block_count"))
    n_embd = int(field(f"{arch}.embedding_length"))
    n_head = int(field(f"{arch}.attention.head_count"))
    n_head_kv = field(f"{arch}.attention.head_count_kv", n_head)
    n_head_kv = int(max(n_head_kv) if isinstance(n_head_kv, list) else n_head_kv)
    window = int(field(f"{arch}.attention.sliding_window", 0) or 0)
    tensor_bytes = sum(int(t.n_bytes) for t in reader.tensors)
    vocab_bytes = sum(int(t.n_bytes) for t in reader.tensors if t.name in ("token_embd.weight", "output.weight"))
    return ModelInfo(
        path=path,
        file_size=path.stat().st_size,
        architecture=arch,
        name=str(field("general.name", path.stem)),
        n_layers=n_layers,
        n_ctx_train=int(field(f"{arch}.context_length", 0)),
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim_k=int(field(f"{arch}.attention.key_length", n_embd // n_head)),
        head_dim_v=int(field(f"{arch}.attention.value_length", n_embd // n_head)),
        sliding_window=window,
        n_swa_layers=_SWA_LAYERS[arch](n_layers) if window and arch in _SWA_LAYERS else 0,
        n_experts=int(field(f"{arch}.expert_count", 0) or 0),
        n_experts_used=int(field(f"{arch}.expert_used_count", 0) or 0),
        n_vocab=len(reader.fields["tokenizer.ggml.tokens"].data),
        tensor_bytes=tensor_bytes,
        output_tensor_bytes=vocab_bytes,
    )


# ---- a load in a fresh process ----------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import json, sys
    import llama_cpp

    def mem():
        d = {}
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Rss", "Anonymous"):
                    d[k] = int(v.split()[0]) * 1024
        return {"rss": d["Rss"], "anon": d["Anonymous"], "file": d["Rss"] - d["Anonymous"]}

    kwargs = json.loads(sys.argv[1])
    path = kwargs.pop("model_path")
    fill = kwargs.pop("fill")
    before = mem()
    llm = llama_cpp.Llama(model_path=path, verbose=True, **kwargs)
    loaded = mem()
    if fill:
        n_fill = llm.n_ctx() - 16
        v = llm.n_vocab()  # ordinary tokens: above the specials, inside a small test vocabulary too
        llm.eval([(i * 7919) % 20000 + 300 if v > 20300 else (i * 7919) % v for i in range(n_fill)])
    filled = mem()
    print("RESULT " + json.dumps({"before": before, "loaded": loaded, "filled": filled}), flush=True)
    """
)


def _llama_kwargs(model: ModelInfo, plan: LoadPlan) -> dict[str, Any]:
    import inspect

    import llama_cpp

    kwargs: dict[str, Any] = {
        "model_path": str(model.path),
        "n_gpu_layers": plan.n_gpu_layers,
        "n_ctx": plan.n_ctx,
        "n_batch": plan.n_batch,
        "n_ubatch": plan.n_ubatch,
        "n_threads": plan.n_threads,
        "n_threads_batch": plan.n_threads_batch,
        "flash_attn": plan.flash_attn,
        "use_mmap": plan.use_mmap,
    }
    if "swa_full" in inspect.signature(llama_cpp.Llama.__init__).parameters:
        kwargs["swa_full"] = plan.swa_full
    return kwargs


def _measure(
    model: ModelInfo, plan: LoadPlan, *, fill: bool = True, timeout: float | None = 600
) -> tuple[dict[str, Any], dict[str, float]]:
    """Load in a fresh process; `fill` evaluates a whole context of tokens after the load
    (`timeout` None: as long as it takes, for bench/planner_memory.py)."""
    kwargs = _llama_kwargs(model, plan) | {"fill": fill}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(kwargs)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    result = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
    logged: dict[str, float] = {}
    for kind, mib in re.findall(r"(\S+ KV|\S+ compute|\S+ model) buffer size =\s+([\d.]+) MiB", out):
        logged[kind] = logged.get(kind, 0.0) + float(mib)
    return result, logged


def _growth(result: dict[str, Any], stage: str, kind: str) -> int:
    return int(result[stage][kind] - result["before"][kind])


def _within(measured: float, estimated: float) -> bool:
    # (a part of a few MiB, the tiny gpt-oss's, is within 3 MiB rather than a share of itself: the
    # backend's code pages, ~2 MiB, are file-backed but not the model's)
    return abs(estimated - measured) <= max(TOLERANCE * measured, 3 * MIB)


def _covers(measured: float, estimated: float) -> bool:
    """An estimate of the peak: never below what llama.cpp took (a load planned on it would fail),
    and not so far above that it costs context or layers."""
    return measured <= estimated <= (1 + TOLERANCE) * measured


# ---- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gemma(starter_path: Path) -> ModelInfo:
    return inspect_gguf(starter_path)


@pytest.fixture(scope="module")
def gptoss_2layer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelInfo]:
    # CI lays shared/ beside the checkout; a missing tool is a broken set-up, not a reason to skip.
    assert SYNTHETIC_TOOL.exists(), f"the gpt-oss stand-in generator is missing: {SYNTHETIC_TOOL}"
    out = tmp_path_factory.mktemp("gptoss") / "gptoss-2layer.gguf"
    subprocess.run([sys.executable, str(SYNTHETIC_TOOL), str(out), "--layers", "2"], check=True, timeout=600)
    yield inspect_gguf(out)
    out.unlink(missing_ok=True)


# ---- tests ------------------------------------------------------------------------------------

_PLANNER_FIELDS = (
    "n_layers", "n_ctx_train", "n_embd", "n_head", "n_head_kv", "head_dim_k", "head_dim_v",
    "sliding_window", "n_swa_layers", "n_experts_used", "n_vocab", "tensor_bytes", "output_tensor_bytes",
)  # fmt: skip


def test_inspect_gguf_follows_the_planner_conventions(gemma: ModelInfo) -> None:
    mine = model_info_from_gguf(gemma.path)
    for name in _PLANNER_FIELDS:
        assert getattr(gemma, name) == getattr(mine, name), name
    assert (gemma.n_layers, gemma.n_swa_layers, gemma.sliding_window) == (18, 15, 512)


def _check(model: ModelInfo, plan: LoadPlan) -> None:
    assert plan.fits, plan.reason
    assert plan.n_gpu_layers == 0, "this check is for the CPU; the machine has no GPU offload"
    est = estimate_memory(
        model,
        plan.n_ctx,
        plan.n_gpu_layers,
        plan.type_k,
        plan.type_v,
        plan.swa_full,
        plan.use_mmap,
        n_ubatch=plan.n_ubatch,
        flash_attn=plan.flash_attn,
    )
    result, logged = _measure(model, plan)
    kv = kv_bytes(model, plan.n_ctx, plan.type_k, plan.type_v, swa_full=plan.swa_full, n_ubatch=plan.n_ubatch)
    # (what, measured, estimated, must be within TOLERANCE; else the estimate must not be lower)
    rows: list[tuple[str, float, float, bool]] = [
        ("KV cache (llama.cpp log)", logged["CPU KV"] * MIB, kv, True),
        ("compute reserved (llama.cpp log)", logged["CPU compute"] * MIB, est.compute_ram_reserved, True),
        # Right after the load: weights, cache and vocabulary; nothing of the compute buffer yet.
        ("RSS growth after load", _growth(result, "loaded", "rss"), est.ram - est.compute_ram, True),
        # The repacked share of mmapped weights is an upper bound (see planner docstring).
        (
            "anonymous growth after load",
            _growth(result, "loaded", "anon"),
            est.weights_ram + est.kv_ram + est.overhead_ram,
            not plan.use_mmap,
        ),
        ("file-backed growth after load", _growth(result, "loaded", "file"), est.weights_mapped, plan.use_mmap),
        # With the whole context used: everything (the peak the plan is made for).
        ("RSS growth with the context full", _growth(result, "filled", "rss"), est.ram, True),
    ]
    table = "\n".join(
        f"  {what:34} measured {m / MIB:9.1f} MiB  estimated {e / MIB:9.1f} MiB  ({(e - m) / max(m, 1):+.1%})"
        for what, m, e, _ in rows
    )
    report = f"{model.name}: mmap={plan.use_mmap} flash_attn={plan.flash_attn} n_ctx={plan.n_ctx}\n{table}"
    print(report)
    for what, m, e, strict in rows:
        if what.endswith("context full"):
            assert _covers(m, e), f"{what}\n{report}"
        elif strict:
            assert _within(m, e), f"{what}\n{report}"
        elif what.startswith("anonymous"):
            assert e >= m * (1 - TOLERANCE), f"{what}\n{report}"


@pytest.mark.parametrize("flash_attn", [False, True], ids=["fa-off", "fa-on"])
@pytest.mark.parametrize("flip_mmap", [False, True], ids=["plan", "other-mmap"])
def test_gemma_estimate_matches_llama_cpp(gemma: ModelInfo, flip_mmap: bool, flash_attn: bool) -> None:
    plan = plan_load(probe(refresh=True), gemma, ctx_cap=CTX_CAP)
    plan = replace(plan, use_mmap=plan.use_mmap != flip_mmap, flash_attn=flash_attn)
    _check(gemma, plan)


@pytest.mark.parametrize("flash_attn", [False, True], ids=["fa-off", "fa-on"])
@pytest.mark.parametrize("flip_mmap", [False, True], ids=["plan", "other-mmap"])
def test_gptoss_standin_estimate_matches_llama_cpp(gptoss_2layer: ModelInfo, flip_mmap: bool, flash_attn: bool) -> None:
    plan = plan_load(probe(refresh=True), gptoss_2layer, ctx_cap=CTX_CAP)
    plan = replace(plan, use_mmap=plan.use_mmap != flip_mmap, flash_attn=flash_attn)
    _check(gptoss_2layer, plan)


@pytest.mark.parametrize("flash_attn", [False, True], ids=["fa-off", "fa-on"])
def test_tiny_gptoss_estimate_matches_llama_cpp(tiny_gptoss_path: Path, flash_attn: bool) -> None:
    """The tiny gpt-oss (the tests' own, ~1 MB of weights): the vocabulary and the buffers are
    nearly all of it."""
    model = inspect_gguf(tiny_gptoss_path)
    plan = replace(plan_load(probe(refresh=True), model, ctx_cap=CTX_CAP), flash_attn=flash_attn)
    _check(model, plan)


@pytest.mark.parametrize("flash_attn", [False, True], ids=["fa-off", "fa-on"])
def test_gptoss_standin_at_16k_with_the_context_full(gptoss_2layer: ModelInfo, flash_attn: bool) -> None:
    """gpt-oss-20b's CPU plan is 16K: without flash attention the scores over the whole context
    are what grows (2 GiB of compute here, 3 GiB for the real model)."""
    plan = plan_load(probe(refresh=True), gptoss_2layer, ctx_cap=16384)
    _check(gptoss_2layer, replace(plan, n_ctx=16384, flash_attn=flash_attn))


def test_gptoss_standin_without_flash_attention_at_16k(gptoss_2layer: ModelInfo) -> None:
    """The attention scores dominate the CPU compute buffer without flash attention (2 GiB here)."""
    hw = probe(refresh=True)
    plan = plan_load(hw, gptoss_2layer, ctx_cap=16384)
    est = estimate_memory(
        gptoss_2layer, 16384, 0, "f16", "f16", True, plan.use_mmap, n_ubatch=plan.n_ubatch, flash_attn=False
    )
    fa = estimate_memory(
        gptoss_2layer, 16384, 0, "f16", "f16", True, plan.use_mmap, n_ubatch=plan.n_ubatch, flash_attn=True
    )
    assert est.compute_ram_reserved > 4 * fa.compute_ram_reserved
    _, logged = _measure(gptoss_2layer, replace(plan, n_ctx=16384, flash_attn=False), fill=False)
    assert _within(logged["CPU compute"] * MIB, est.compute_ram_reserved), (logged, est)
    _, logged = _measure(gptoss_2layer, replace(plan, n_ctx=16384, flash_attn=True), fill=False)
    assert _within(logged["CPU compute"] * MIB, fa.compute_ram_reserved), (logged, fa)
