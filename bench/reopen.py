"""A long conversation costs no more than a new one: reopening it after a restart, and switching
between two chats in one session, against the next turn of a warm process.

For a conversation of N tokens of text (a system prompt and filler turns, counted with the model's
own vocabulary), each round:
1. warm: an engine process answers the conversation's turn k, saves its KV state (what leaving the
   chat does), and answers turn k+1 from the state it holds: that time to first token is the warm
   figure (the same new tokens are evaluated in every case);
2. reopen: a fresh engine process (the state of turn k put back on disk, as a restart finds it)
   answers turn k+1: the restore plus the new turn;
3. cold (unless --no-cold): a fresh engine process with no saved state answers turn k+1;
4. switch: in one process, chat A's turn k, then another chat B of N tokens, then A's turn k+1.
As in the window, leaving a chat saves its state and opening one restores it at once
(`open_session`, what ChatService.enter_conversation asks for); the user's next message follows
`--think` seconds after the chat was opened (reading it and typing take longer than that). Times
to first token are measured by the caller, from the request to the first text it receives (the
pipe and the batching included), the same way for every case; loads are not counted. The engine's
own log says how long each restore took. Rounds alternate in one run.

    python bench/reopen.py --model FILE --tokens 1000 [--rounds 5] [--ctx 8192] [--think 1] [--no-cold] [--no-switch]

Last lines: chat_switch_ratio X, then reopen_ratio X (medians of rounds; target <= 1.5).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core.engine.host import LocalBackend  # noqa: E402
from app.core.engine.types import GenerateRequest, Sampling  # noqa: E402
from app.core.formats.base import Conversation, Done, Message  # noqa: E402

SAMPLING = Sampling(temperature=0.8, seed=11)
FILLER = (
    "The harbour log for day {i}: the tide rose at {h}:{m:02d}, the wind came from the {d}, and the "
    "keeper noted {n} ships passing the point, the largest of them a grain carrier bound for the south. "
)


def token_counter(model: Path) -> Callable[[str], int]:
    """Tokens of a text in the model's own vocabulary (characters a token differ a lot between
    vocabularies: the 12.1 GB stand-in's byte-level one takes ~1.2 characters a token)."""
    from llama_cpp import Llama

    vocab = Llama(str(model), vocab_only=True, verbose=False)
    return lambda text: len(vocab.tokenize(text.encode(), add_bos=False, special=False))


def conversation(tokens: int, topic: str, count: Callable[[str], int]) -> tuple[Message, ...]:
    """At least `tokens` tokens of message text (the template's own tokens come on top)."""
    messages: list[Message] = [Message("system", f"You answer questions about the {topic} log, briefly.")]
    size = count(messages[0].content)
    i = 0
    while size < tokens and i < 100_000:
        i += 1
        text = "".join(
            FILLER.format(
                i=i * 3 + j, h=(i + j) % 24, m=(7 * i) % 60, d="north east south west".split()[j], n=i % 9 + j
            )
            for j in range(4)
        )
        turn = [Message("user", f"Add entry {i}: {text}"), Message("assistant", f"Entry {i} noted.")]
        messages += turn
        size += sum(count(m.content) for m in turn)
    return (*messages, Message("user", "What was the first entry about?"))


def ask(backend: LocalBackend, messages: tuple[Message, ...], session: str, max_tokens: int = 8) -> tuple[str, Done]:
    """The reply's text and its Done, whose time_to_first_token_s is replaced by the caller's."""
    request = GenerateRequest(Conversation(messages), max_tokens=max_tokens, sampling=SAMPLING, session=session)
    text: list[str] = []
    asked, first = time.perf_counter(), 0.0
    for event in backend.generate(request):
        if not first:
            first = time.perf_counter()
        if isinstance(event, Done):
            stats = replace(event.stats, time_to_first_token_s=first - asked)
            return "".join(text), replace(event, stats=stats)
        text.append(getattr(event, "text", ""))
    raise SystemExit("the reply ended without finishing")


def open_chat(backend: LocalBackend, session: str, think: float) -> None:
    """What opening a chat in the window does, then the user reading and typing."""
    backend.open_session(session)
    time.sleep(think)


def loaded(model: Path, ctx: int, kv: Path) -> LocalBackend:
    backend = LocalBackend(kv_dir=kv)
    backend.load(model, ctx_cap=ctx)
    return backend


def one_round(
    model: Path,
    ctx: int,
    tokens: int,
    cold: bool,
    work: Path,
    think: float,
    count: Callable[[str], int],
    switch: bool = True,
) -> dict[str, float]:
    kv = work / "kv"
    for folder in ("kv", "kv-cold", "kv-switch"):  # each round starts with no saved state at all
        shutil.rmtree(work / folder, ignore_errors=True)
    turn_k = conversation(tokens, "harbour", count)
    out: dict[str, float] = {}
    a = loaded(model, ctx, kv)
    try:
        answer, first = ask(a, turn_k, "c1-1")
        a.save_session()  # leaving the chat; the engine handles it before the next request
        next_turn = (*turn_k, Message("assistant", answer), Message("user", "And the last entry?"))
        time.sleep(think)  # as long as the other cases' users take
        _t, warm = ask(a, next_turn, "c1-1")  # the same next turn, answered by the warm process
        (state,) = kv.rglob("*.kv")  # turn k's state (the save ran before that reply)
        kept = work / "turn-k.kv"
        shutil.copy(state, kept)
    finally:
        a.close()
    # The warm figure: the next turn answered by the process that holds the conversation in memory.
    out["warm"] = warm.stats.time_to_first_token_s
    out["warm_evaluated"] = warm.stats.prompt_tokens_evaluated
    out["prompt_tokens"] = first.stats.prompt_tokens
    shutil.copy(kept, state)
    b = loaded(model, ctx, kv)
    try:
        open_chat(b, "c1-1", think)  # the window opens the chat it showed before the restart
        _t, reopened = ask(b, next_turn, "c1-1")
    finally:
        b.close()
    out["reopen"] = reopened.stats.time_to_first_token_s
    out["reopen_restored"] = reopened.stats.prompt_tokens_restored
    out["reopen_evaluated"] = reopened.stats.prompt_tokens_evaluated
    if cold:
        c = loaded(model, ctx, work / "kv-cold")
        try:
            _t, cold_done = ask(c, next_turn, "c1-1")
        finally:
            c.close()
        out["cold"] = cold_done.stats.time_to_first_token_s
    if not switch:
        return out
    d = loaded(model, ctx, work / "kv-switch")
    try:
        answer, _ = ask(d, turn_k, "c1-1")
        d.save_session()  # leaving chat A
        open_chat(d, "c2-1", think)
        ask(d, conversation(tokens, "lighthouse", count), "c2-1")  # another chat
        d.save_session()  # leaving chat B
        open_chat(d, "c1-1", think)
        back = (*turn_k, Message("assistant", answer), Message("user", "And the last entry?"))
        _t, switched = ask(d, back, "c1-1")
    finally:
        d.close()
    out["switch"] = switched.stats.time_to_first_token_s
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ctx", type=int, default=8192)
    ap.add_argument("--no-cold", action="store_true", help="skip the run without a saved state (slow at scale)")
    ap.add_argument("--no-switch", action="store_true", help="skip the two-chat switch (slow at scale)")
    ap.add_argument("--think", type=float, default=1.0, help="seconds from opening a chat to the next message")
    args = ap.parse_args()
    rounds: list[dict[str, float]] = []
    count = token_counter(Path(args.model))
    with tempfile.TemporaryDirectory(prefix="hearth-reopen-") as tmp:
        for i in range(args.rounds):
            started = time.perf_counter()
            r = one_round(
                Path(args.model),
                args.ctx,
                args.tokens,
                not args.no_cold,
                Path(tmp),
                args.think,
                count,
                not args.no_switch,
            )
            rounds.append(r)
            cold = f", cold {r['cold']:.2f} s" if "cold" in r else ""
            switched = f", switched back {r['switch']:.3f} s" if "switch" in r else ""
            print(
                f"round {i + 1}: {r['prompt_tokens']:.0f} prompt tokens; time to first token: warm "
                f"{r['warm']:.3f} s ({r['warm_evaluated']:.0f} evaluated), reopened {r['reopen']:.3f} s "
                f"({r['reopen_restored']:.0f} restored, {r['reopen_evaluated']:.0f} evaluated){switched}{cold} "
                f"[{time.perf_counter() - started:.0f} s]",
                flush=True,
            )
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    if "cold" in med:
        print(f"cold_ratio {med['cold'] / med['warm']:.1f} (without a saved state)")
    if "switch" in med:
        print(f"chat_switch_ratio {med['switch'] / med['warm']:.2f}")
    print(f"reopen_ratio {med['reopen'] / med['warm']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
