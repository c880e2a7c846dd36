"""The planner's memory estimate against llama.cpp's real peak, for one model and context: the
check of tests/e2e/test_planner_memory.py (a fresh process loads the model with the plan's
parameters, fills the whole context, and the growth of its resident set is compared with the
estimate), without the test's time limit, for a load too slow to fill in a test: the gpt-oss-20b
stand-in at its 16K CPU context (~16,000 tokens of prompt at ~10-15 tok/s on 2 cores).

    python bench/planner_memory.py --model FILE [--ctx 16384] [--flash on|off|plan]

Last line: planner_peak_error X (estimate of the peak ÷ measured RSS growth with the context full,
minus 1; the target is 0 <= X <= 0.10).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core.gguf_file import inspect_gguf  # noqa: E402
from app.core.hardware import probe  # noqa: E402
from app.core.planner import estimate_memory, kv_bytes, plan_load  # noqa: E402
from tests.e2e.test_planner_memory import MIB, _measure  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ctx", type=int, default=16384)
    ap.add_argument("--flash", choices=("on", "off", "plan"), default="plan")
    args = ap.parse_args()
    info = inspect_gguf(args.model)
    plan = plan_load(probe(info.path.parent), info, ctx_cap=args.ctx)
    plan = replace(plan, n_ctx=args.ctx)
    if args.flash != "plan":
        plan = replace(plan, flash_attn=args.flash == "on")
    if not plan.fits or plan.n_gpu_layers:
        raise SystemExit(f"not a CPU plan that fits: {plan.reason}")
    est = estimate_memory(
        info, plan.n_ctx, 0, plan.type_k, plan.type_v, plan.swa_full, plan.use_mmap,
        n_ubatch=plan.n_ubatch, flash_attn=plan.flash_attn,
    )  # fmt: skip
    print(f"{info.name}: n_ctx={plan.n_ctx} mmap={plan.use_mmap} flash_attn={plan.flash_attn} "
          f"threads={plan.n_threads}", flush=True)  # fmt: skip
    result, logged = _measure(info, plan, timeout=None)  # the test's check; fails with llama.cpp's log
    grown = {stage: result[stage]["rss"] - result["before"]["rss"] for stage in ("loaded", "filled")}
    kv = kv_bytes(info, plan.n_ctx, plan.type_k, plan.type_v, swa_full=plan.swa_full, n_ubatch=plan.n_ubatch)
    rows = [
        ("KV cache (llama.cpp log)", logged.get("CPU KV", 0.0) * MIB, kv),
        ("compute reserved (llama.cpp log)", logged.get("CPU compute", 0.0) * MIB, est.compute_ram_reserved),
        ("RSS growth after load", grown["loaded"], est.ram - est.compute_ram),
        ("RSS growth with the context full", grown["filled"], est.ram),
    ]
    for what, measured, estimated in rows:
        print(f"  {what:34} measured {measured / MIB:9.1f} MiB  estimated {estimated / MIB:9.1f} MiB  "
              f"({(estimated - measured) / max(measured, 1):+.1%})")  # fmt: skip
    print(f"planner_peak_error {est.ram / grown['filled'] - 1:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
