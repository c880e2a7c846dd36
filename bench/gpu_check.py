"""Hearth's engine path on a GPU against llama-bench from the same llama.cpp build.

    python bench/gpu_check.py --builds DIR --model GGUF [--llama-bench PATH] [--tokens 128]

Chooses the build the way the app does (app.core.llama_builds: probe in a child process), checks
that it reports a GPU, loads the model in a child process started with llama_builds.child_env()
and n_gpu_layers=-1, checks llama.cpp's "offloaded N/N layers to GPU", and measures generation
tokens/s after a short prompt (the best of 3 runs). Then llama-bench -ngl 99 -p 0 -n TOKENS from
the same build. Last line: both figures and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, os, re, sys, tempfile, time
log = tempfile.TemporaryFile(mode="w+b"); saved = os.dup(2); os.dup2(log.fileno(), 2)
def show_log_on_failure(kind, value, tb):  # llama.cpp's log and the traceback back on the real stderr
    os.dup2(saved, 2); log.seek(0); sys.stderr.write(log.read().decode("utf-8", "replace")[-3000:])
    sys.__excepthook__(kind, value, tb)
sys.excepthook = show_log_on_failure
import llama_cpp
model, n_tokens = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
fa = os.environ.get("GPU_CHECK_FA", "1") == "1"  # the planner's choice on a GPU; 0 for lavapipe + tiny gpt-oss
llm = llama_cpp.Llama(model, n_gpu_layers=-1, n_ctx=2048, n_batch=512, flash_attn=fa, verbose=True)
load_s = time.perf_counter() - t0
prompt = llm.tokenize(b"Write a long story about a lighthouse keeper.", add_bos=True, special=False)
rates = []
for _ in range(3):  # generation only: the clock starts at the first token (the prompt is evaluated by then)
    llm.reset(); n = -1; t = 0.0
    for _token in llm.generate(prompt, temp=0.0, top_k=1, reset=True):
        n += 1
        if n == 0:
            t = time.perf_counter()
        if n == n_tokens:
            break
    rates.append(n / (time.perf_counter() - t))
sys.stderr.flush(); os.dup2(saved, 2); log.seek(0)
text = log.read().decode("utf-8", "replace")
m = re.search(r"offloaded (\d+)/(\d+) layers to GPU", text)
print(json.dumps({"load_s": load_s, "tok_s": max(rates), "rates": rates,
                  "offloaded": [int(m.group(1)), int(m.group(2))] if m else None}))
"""


def hearth_rate(choice: object, model: Path, tokens: int) -> dict[str, object]:
    from app.core import llama_builds

    env = llama_builds.child_env(choice)  # type: ignore[arg-type]
    env["PYTHONPATH"] = os.pathsep.join([p for p in (env.get("PYTHONPATH"), str(ROOT)) if p])
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(model), str(tokens)], env=env, capture_output=True, text=True, timeout=600
    )
    if out.returncode != 0:
        raise SystemExit(f"gpu_check: the engine child failed ({out.returncode}): {(out.stderr or out.stdout)[-2000:]}")
    data: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


def bench_rate(llama_bench: Path, model: Path, tokens: int, lib_dir: Path) -> float:
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join([str(lib_dir), os.environ.get("LD_LIBRARY_PATH", "")]))
    out = subprocess.run(
        [
            str(llama_bench),
            "-m",
            str(model),
            "-ngl",
            "99",
            "-fa",
            "1",
            "-p",
            "0",
            "-n",
            str(tokens),
            "-r",
            "3",
            "-o",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise SystemExit(f"gpu_check: llama-bench failed: {out.stderr[-2000:]}")
    rows = json.loads(out.stdout)
    return float(next(r["avg_ts"] for r in rows if r.get("n_gen", 0) > 0))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--builds", type=Path, required=True, help="folder with cuda/ (or vulkan/) llama.cpp libraries")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--llama-bench", type=Path, help="llama-bench built from the same source; omit to skip")
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--expect", default="cuda", help="the build that must be chosen")
    args = p.parse_args()
    os.environ["HEARTH_LLAMA_BUILDS"] = str(args.builds)
    os.environ.setdefault("HEARTH_HOME", str(Path(os.environ.get("TMPDIR", "/tmp")) / "hearth-gpu-check"))
    from app.core import llama_builds

    started = time.perf_counter()
    choice = llama_builds.choose_build(args.expect)
    print(f"gpu_check: build chosen in {time.perf_counter() - started:.1f} s: {choice.reason}")
    for line in choice.tried:
        print(f"gpu_check:   tried: {line}")
    if choice.build.name != args.expect or not choice.devices:
        raise SystemExit(f"gpu_check: expected the {args.expect} build with a GPU, got: {choice.reason}")
    hearth = hearth_rate(choice, args.model, args.tokens)
    print(f"gpu_check: Hearth's engine path: {json.dumps(hearth)}")
    offloaded = hearth.get("offloaded")
    if not (isinstance(offloaded, list) and offloaded[0] == offloaded[1]):
        raise SystemExit(f"gpu_check: not every layer went to the GPU: {offloaded}")
    rate = float(hearth["tok_s"])  # type: ignore[arg-type]
    if args.llama_bench is None:
        print(f"gpu_check: {choice.summary}: Hearth {rate:.1f} tok/s generation, all {offloaded[1]} layers on the GPU")
        return 0
    ref = bench_rate(args.llama_bench, args.model, args.tokens, choice.build.lib_path or args.builds)
    print(
        f"gpu_check: {choice.summary}: Hearth {rate:.1f} tok/s vs llama-bench {ref:.1f} tok/s "
        f"({rate / ref:.0%}), all {offloaded[1]} layers on the GPU"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
