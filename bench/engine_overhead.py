"""Generation speed through Hearth's engine (format parser, events) ÷ bare llama_cpp.Llama.generate.

Same model, prompt tokens, seed, sampling and threads; the two are alternated in one run on the
same loaded llama.cpp context (the cache is cleared before each run so both evaluate the whole
prompt), and the generation rate is timed from the first token to the last.

    python bench/engine_overhead.py --model FILE [--tokens 128] [--rounds 3]

Last line: engine_overhead_ratio X (target >= 0.98).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core.engine import GenerateRequest, Sampling  # noqa: E402
from app.core.engine.llama import Engine  # noqa: E402
from app.core.formats.base import Conversation, Done, Message  # noqa: E402
from app.core.gguf_file import inspect_gguf  # noqa: E402
from app.core.hardware import probe  # noqa: E402
from app.core.planner import plan_load  # noqa: E402

PROMPT = "Write a long story about a lighthouse keeper and a storm, with many details."


def bare_rate(engine: Engine, tokens: list[int], n: int, s: Sampling) -> tuple[float, int]:
    llm = engine._require()
    llm.reset()
    llm.set_seed(s.seed or 0)
    count, first = 0, 0.0
    gen = llm.generate(
        tokens,
        temp=s.temperature,
        top_p=s.top_p,
        top_k=s.top_k,
        min_p=s.min_p,
        repeat_penalty=s.repeat_penalty,
        reset=True,
    )
    for token in gen:
        if not first:
            first = time.perf_counter()
        llm.detokenize([token], special=True)  # a caller of bare llama.cpp needs the text too
        count += 1
        if count >= n:
            break
    last = time.perf_counter()
    gen.close()
    return (count - 1) / (last - first), count


def engine_rate(engine: Engine, request: GenerateRequest) -> tuple[float, int]:
    engine._require().reset()
    first = 0.0
    done = None
    for event in engine.generate(request):
        if not first:
            first = time.perf_counter()
        if isinstance(event, Done):
            done = event
    last = time.perf_counter()
    assert done is not None
    # The first event arrives with the first token's text, so count intervals from there.
    return (done.stats.generated_tokens - 1) / (last - first), done.stats.generated_tokens


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ctx", type=int, default=2048)
    args = ap.parse_args()

    engine = Engine()
    hw = probe()
    loaded = engine.load(args.model, plan=plan_load(hw, inspect_gguf(args.model), ctx_cap=args.ctx))
    print(f"model {loaded.info.name}; {loaded.plan.reason}")
    sampling = Sampling(temperature=0.8, top_p=0.95, top_k=40, min_p=0.05, seed=42)
    request = GenerateRequest(
        Conversation((Message("user", PROMPT),)), max_tokens=args.tokens, sampling=sampling, ignore_eos=True
    )
    tokens = engine.prepare(request).tokens
    bare, ours = [], []
    for i in range(args.rounds):
        b, nb = bare_rate(engine, tokens, args.tokens, sampling)
        e, ne = engine_rate(engine, request)
        bare.append(b)
        ours.append(e)
        print(f"round {i + 1}: bare {b:.2f} tok/s ({nb} tokens), engine {e:.2f} tok/s ({ne} tokens)")
    engine.unload()
    ratio = statistics.median(ours) / statistics.median(bare)
    print(f"bare median {statistics.median(bare):.2f} tok/s, engine median {statistics.median(ours):.2f} tok/s")
    print(f"engine_overhead_ratio {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
