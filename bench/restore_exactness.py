"""Does a conversation restored from its saved KV state continue token for token as the live one?

For each of five prompt pairs: an engine answers the first turn, saves its state (unload) and
loads again; the second turn then starts from the restored state. A second engine that never left
answers the same two turns. Both use the planner's plan with `--flash` and `--gpu-layers`
overridden, the same seed, and 64 tokens of the second reply are compared. The state goes through
the disk as in the app. Runs on whatever llama.cpp build LLAMA_CPP_LIB_PATH points at (a GPU build
on a GPU machine: bench/gpu_check.sh).

    python bench/restore_exactness.py --model FILE [--flash on|off|plan] [--gpu-layers N]

Last line: restore_exact N/5 (target 5/5).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core.engine.llama import Engine  # noqa: E402
from app.core.engine.types import GenerateRequest, Sampling  # noqa: E402
from app.core.formats.base import Conversation, Done, Message  # noqa: E402
from app.core.gguf_file import inspect_gguf  # noqa: E402
from app.core.hardware import probe  # noqa: E402
from app.core.planner import plan_load  # noqa: E402

SEEDED = Sampling(temperature=0.8, seed=5)
PAIRS = [
    ("Name three rivers.", "And three mountains?"),
    ("Write a poem about the sea.", "Now one about the sky."),
    ("What is a lighthouse?", "Who keeps it?"),
    ("Count to ten.", "Now backwards."),
    ("Tell me a joke.", "Another one."),
]


def reply(engine: Engine, messages: tuple[Message, ...], n: int) -> tuple[str, Done]:
    text: list[str] = []
    request = GenerateRequest(Conversation(messages), max_tokens=n, sampling=SEEDED, session="bench-1")
    for event in engine.generate(request):
        if isinstance(event, Done):
            return "".join(text), event
        text.append(getattr(event, "text", ""))
    raise SystemExit("the reply ended without its Done event")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--flash", choices=("on", "off", "plan"), default="plan")
    ap.add_argument("--gpu-layers", type=int, default=None)
    ap.add_argument("--ctx", type=int, default=4096)
    args = ap.parse_args()
    info = inspect_gguf(args.model)
    plan = plan_load(probe(info.path.parent), info, ctx_cap=args.ctx)
    if args.flash != "plan":
        plan = replace(plan, flash_attn=args.flash == "on")
    if args.gpu_layers is not None:
        plan = replace(plan, n_gpu_layers=args.gpu_layers)
    # About 1,000 tokens, longer than the sliding window (Gemma 3: 512 positions; gpt-oss: 128), so
    # the restored cache holds cells the window has left behind. Sized with the model's own
    # vocabulary (a byte-level one takes ~1 token a character).
    import llama_cpp

    vocab = llama_cpp.Llama(str(info.path), vocab_only=True, verbose=False)
    unit = "Keep answers short and exact. "
    per_unit = max(1, len(vocab.tokenize(unit.encode(), add_bos=False)))
    system = Message("system", "You are helpful. " + unit * max(1, 1000 // per_unit))
    print(f"{info.name}: n_ctx={plan.n_ctx} flash_attn={plan.flash_attn} gpu_layers={plan.n_gpu_layers} "
          f"threads={plan.n_threads}", flush=True)  # fmt: skip
    same = 0
    for ask, then in PAIRS:
        kv = Path(tempfile.mkdtemp(prefix="hearth-restore-"))
        first = (system, Message("user", ask))
        try:
            saved = Engine(kv_dir=kv)
            saved.load(info, plan=plan)
            answer, _ = reply(saved, first, 40)
            saved.unload()  # saves the state
            second = (*first, Message("assistant", answer), Message("user", then))
            saved.load(info, plan=plan)
            restored, done = reply(saved, second, 64)
            saved.unload()
            live = Engine()
            live.load(info, plan=plan)
            reply(live, first, 40)
            expected, _ = reply(live, second, 64)
            live.unload()
        finally:
            shutil.rmtree(kv, ignore_errors=True)
        equal = restored == expected and done.stats.prompt_tokens_restored > 0
        same += equal
        where = next((i for i, (a, b) in enumerate(zip(restored, expected, strict=False)) if a != b), None)
        print(f"{ask!r}: {done.stats.prompt_tokens_restored} tokens restored, {done.stats.prompt_tokens_evaluated} "
              f"evaluated, {'equal' if equal else f'differs at character {where}'}", flush=True)  # fmt: skip
    print(f"restore_exact {same}/{len(PAIRS)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
