"""Bare llama-cpp-python in a process of its own, for benchmarks that compare Hearth's path
(which runs llama.cpp in its engine process) with llama.cpp alone: same model, same load plan,
same prompt tokens (rendered and tokenized as the engine does), same sampling and seed, and the
same loop as bench/engine_overhead.py's bare side.

    BareProcess(model, ctx, sampling).rate(request, n)  ->  (tokens/s, tokens)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core.engine import GenerateRequest, Sampling  # noqa: E402
from app.core.engine.wire import decode_request, encode_request  # noqa: E402
from bench import engine_overhead  # noqa: E402

SAMPLING = Sampling(temperature=0.0, top_p=1.0, top_k=1, min_p=0.0, seed=1)


class BareProcess:
    """Bare llama-cpp-python in its own process, driven over a pipe (one JSON line each way)."""

    def __init__(self, model: str, ctx: int, sampling: Sampling = SAMPLING) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--model",
                model,
                "--ctx",
                str(ctx),
                "--sampling",
                json.dumps(sampling.to_dict()),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def rate(self, request: GenerateRequest, n: int) -> tuple[float, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"request": encode_request(request), "n": n}) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        return float(answer["rate"]), int(answer["n"])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(60)


def bare_child(model: str, ctx: int, sampling: Sampling) -> int:
    from app.core.engine.llama import Engine
    from app.core.gguf_file import inspect_gguf
    from app.core.hardware import probe
    from app.core.planner import plan_load

    engine = Engine()
    info = inspect_gguf(model)
    engine.load(info, plan=plan_load(probe(info.path.parent), info, ctx_cap=ctx))  # the engine's plan
    for line in sys.stdin:
        job = json.loads(line)
        tokens = engine.prepare(decode_request(job["request"])).tokens
        rate, n = engine_overhead.bare_rate(engine, tokens, int(job["n"]), sampling)
        print(json.dumps({"rate": rate, "n": n}), flush=True)
    engine.unload()
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ctx", type=int, required=True)
    ap.add_argument("--sampling", required=True)
    args = ap.parse_args()
    raise SystemExit(bare_child(args.model, args.ctx, Sampling.from_dict(json.loads(args.sampling))))
