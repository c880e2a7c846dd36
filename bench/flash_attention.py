"""Flash attention on and off on this machine's backend: prompt and generation speed, and memory.

Each run is a fresh process that loads the model with the planner's plan (`plan_load`, at the
context `--ctx` allows) with only `flash_attn` changed, evaluates a prompt of `--prompt` tokens in
the plan's batches, generates `--gen` tokens (greedy, the end of text ignored) and reports its peak
resident set (VmHWM) and the planner's estimate for that plan. Off and on alternate, `--rounds`
times each; medians are compared.

    python bench/flash_attention.py --model FILE [--rounds 5] [--ctx 4096] [--prompt 512] [--gen 64]
        [--build vulkan]

`--build` runs the children on another llama.cpp build (HEARTH_LLAMA_BUILDS, as the app finds
them) with the device that build would be forced onto in Settings (on this machine: lavapipe,
Mesa's software Vulkan device, GGML_VK_VISIBLE_DEVICES=0).

Last line: flash_attn_speed_ratio X (generation tok/s with flash attention ÷ without).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MIB = 1024**2


def _vm_hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def child(model: str, ctx: int, flash: bool, prompt: int, gen: int) -> dict[str, Any]:
    from app.core.engine.llama import Engine
    from app.core.gguf_file import inspect_gguf
    from app.core.hardware import probe
    from app.core.planner import estimate_memory, plan_load

    info = inspect_gguf(model)
    hw = probe(info.path.parent)
    plan = replace(plan_load(hw, info, ctx_cap=ctx), flash_attn=flash)
    est = estimate_memory(
        info,
        n_ctx=plan.n_ctx,
        n_gpu_layers=plan.n_gpu_layers,
        use_mmap=plan.use_mmap,
        n_ubatch=plan.n_ubatch,
        type_k=plan.type_k,
        type_v=plan.type_v,
        swa_full=plan.swa_full,
        flash_attn=flash,
    )
    engine = Engine()
    engine.load(info, hardware=hw, plan=plan)
    llm = engine._require()
    # A prompt of ordinary text tokens: the vocabulary's own pieces, cycled (any model, no template).
    line = "The keeper wrote down the tide, the wind and the ships that passed the point. "
    tokens = llm.tokenize((line * (prompt // 4 + 1)).encode(), add_bos=True)[:prompt]  # >= 4 chars a token
    prompt = min(prompt, plan.n_ctx - gen - 1)
    tokens = tokens[:prompt]
    llm.reset()
    started = time.perf_counter()
    llm.eval(tokens)
    prompt_s = time.perf_counter() - started
    count, first, last = 0, 0.0, 0.0
    for _token in llm.generate(
        tokens, temp=0.0, top_k=1, reset=True
    ):  # the prompt is cached: only its last token again
        now = time.perf_counter()
        first = first or now
        last = now
        count += 1
        if count >= gen:
            break
    engine.unload()
    return {
        "device": f"{plan.device}, {plan.n_gpu_layers} layers offloaded",
        "ctx": plan.n_ctx,
        "prompt_tokens": len(tokens),
        "prompt_tps": len(tokens) / prompt_s,
        "gen_tps": (count - 1) / (last - first) if count > 1 and last > first else 0.0,
        "peak_mib": _vm_hwm() / MIB,
        "estimate_mib": est.ram / MIB,
    }


def run(model: str, ctx: int, flash: bool, prompt: int, gen: int, env: dict[str, str] | None) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--model", model, "--ctx", str(ctx), "--prompt", str(prompt),
         "--gen", str(gen), *(["--flash"] if flash else [])],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"the run failed ({out.returncode}): {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--build", default="cpu", help="the llama.cpp build the children load (cpu, vulkan, ...)")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--flash", action="store_true")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.model, args.ctx, args.flash, args.prompt, args.gen)))
        return 0
    env = None
    if args.build != "cpu":
        from app.core import llama_builds

        choice = llama_builds.choose_build(args.build)
        if choice.build.name != args.build:
            raise SystemExit(f"the {args.build} build cannot be used here: {choice.reason}")
        print(f"build: {choice.reason}", flush=True)
        env = llama_builds.child_env(choice)
    results: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for i in range(args.rounds):
        for flash in (False, True) if i % 2 == 0 else (True, False):
            r = run(args.model, args.ctx, flash, args.prompt, args.gen, env)
            results[flash].append(r)
            print(
                f"round {i + 1} flash_attn={'on ' if flash else 'off'} ({r['device']}): ctx {r['ctx']:.0f}, prompt "
                f"{r['prompt_tokens']:.0f} tokens at {r['prompt_tps']:.1f} tok/s, generation {r['gen_tps']:.2f} "
                f"tok/s, peak {r['peak_mib']:.0f} MiB (planner {r['estimate_mib']:.0f} MiB)",
                flush=True,
            )

    def med(flash: bool, key: str) -> float:
        return statistics.median(r[key] for r in results[flash])

    for flash in (False, True):
        print(
            f"flash_attn {'on ' if flash else 'off'}: prompt {med(flash, 'prompt_tps'):.1f} tok/s, generation "
            f"{med(flash, 'gen_tps'):.2f} tok/s, peak {med(flash, 'peak_mib'):.0f} MiB, planner "
            f"{med(flash, 'estimate_mib'):.0f} MiB"
        )
    print(f"flash_attn_prompt_ratio {med(True, 'prompt_tps') / med(False, 'prompt_tps'):.3f}")
    print(f"flash_attn_peak_saved_mib {med(False, 'peak_mib') - med(True, 'peak_mib'):.0f}")
    print(f"flash_attn_speed_ratio {med(True, 'gen_tps') / med(False, 'gen_tps'):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
