"""Generation speed through the whole app path ÷ bare `llama_cpp.Llama.generate`.

The app path: the real main window (offscreen), the composer's Send, the chat service, llama.cpp
in the engine process, the format's parser there, batched frames over the pipe, coalesced events
over queued signals, the chat view rendering Markdown, the reply saved as it streams. Its rate is
what the GUI sees: from the first batch rendered to the reply finished. The bare path:
`Llama.generate` in a separate bare process holding the same model with the same plan (threads,
context, cache types), given the same prompt tokens, greedy sampling and seed, detokenizing each
token — run while the app's engine is idle. The two are alternated; the medians are compared.

    python bench/stream_overhead.py --model FILE [--rounds 5] [--numbers 100]

The prompt makes a base model (the starter) copy a long list of numbers, so a reply is a few
hundred tokens whatever the model. Last line: stream_overhead_ratio X (target >= 0.97).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HEARTH_HOME", tempfile.mkdtemp(prefix="hearth-bench-"))

from app.core.chat.prompt import prompt_conversation  # noqa: E402
from app.core.engine import GenerateRequest  # noqa: E402
from app.core.store import ChatStore  # noqa: E402
from app.gui.app import application  # noqa: E402
from app.gui.main_window import MainWindow  # noqa: E402
from app.gui.model_picker import ModelEntry  # noqa: E402
from app.gui.selftest import wait_for  # noqa: E402
from app.gui.theme import ThemeManager  # noqa: E402
from bench.bare import SAMPLING, BareProcess  # noqa: E402


def seed_conversation(store: ChatStore, numbers: int) -> int:
    conv = store.create_conversation("Counting")
    store.add_message(conv.id, "user", f"Count from 1 to {numbers}.")
    store.add_message(conv.id, "assistant", ", ".join(str(i) for i in range(1, numbers + 1)))
    return conv.id


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def app_rate(window: MainWindow, first_round: bool, prompt: str) -> tuple[float, int, float]:
    """Tokens a second as the window sees them, and the window process's own CPU time per second
    of streaming (rendering, the chat service, the pipe: what competes with llama.cpp's threads)."""
    times: list[float] = []
    cpu: list[float] = []
    frames = window.session.frames_drawn

    def first_batch(*_args: object) -> None:  # connected after the view: runs once it has rendered
        if not times:
            times.append(time.perf_counter())
            cpu.append(cpu_s())

    window.engine.events.connect(first_batch)
    if first_round:
        window.composer.set_text(prompt)
        window.composer.button.click()
    else:
        window.session.regenerate()
    _i, (outcome,) = wait_for([window.session.replyFinished], 1800)
    done = time.perf_counter()
    cpu_used = cpu_s() - cpu[0] if cpu else 0.0
    window.engine.events.disconnect(first_batch)
    n = outcome.stats["generated_tokens"]
    if outcome.state != "complete" or not times or n < 2:
        raise SystemExit(f"the app run failed: {outcome.state} {outcome.error}")
    fps = (window.session.frames_drawn - frames) / (done - times[0])
    own = float(outcome.stats.get("tokens_per_s") or 0.0)
    print(
        f"  the window drew the reply {fps:.1f} times a second; the engine's own rate {own:.2f} tok/s"
        f" (first token to last, in the engine process)",
        flush=True,
    )
    return (n - 1) / (done - times[0]), n, cpu_used / (done - times[0])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--numbers", type=int, default=100, help="length of the list the model copies")
    ap.add_argument("--ctx", type=int, default=4096)
    args = ap.parse_args()

    app = application()
    ThemeManager(app, forced="light")
    home = Path(os.environ["HEARTH_HOME"])
    store = ChatStore(home / "bench.sqlite3")
    window = MainWindow(store, ctx_cap=args.ctx, autoload=False)
    window.resize(1200, 800)
    window.show()
    path = Path(args.model)
    window.load_model(ModelEntry(str(path), path.stem, path, path.stat().st_size))
    index, loaded = wait_for([window.modelLoaded, window.modelFailed], 1800)
    if index == 1:
        raise SystemExit(f"load failed: {loaded[0]}")
    print(f"model {loaded[0].name}; {loaded[0].reason}")
    conv_id = seed_conversation(store, args.numbers)
    window.session.open(conv_id)
    window.session.sampling = SAMPLING
    prompt = f"Count from 1 to {args.numbers} again."

    bare_process = BareProcess(args.model, args.ctx, SAMPLING)
    ours, bare, window_cpu = [], [], []
    for i in range(args.rounds):
        rate, n, cpu = app_rate(window, i == 0, prompt)
        ours.append(rate)
        window_cpu.append(cpu)
        messages = store.messages(conv_id)[:-1]  # the prompt the session built: up to the new message
        conversation = store.get_conversation(conv_id)
        assert conversation is not None
        request = GenerateRequest(prompt_conversation(conversation, messages), sampling=SAMPLING)
        b, nb = bare_process.rate(request, n)
        bare.append(b)
        print(
            f"round {i + 1}: app {rate:.2f} tok/s ({n} tokens), bare {b:.2f} tok/s ({nb} tokens),"
            f" window process CPU {cpu * 1000:.0f} ms/s",
            flush=True,
        )
    bare_process.close()
    window.close()
    store.close()
    ratio = statistics.median(ours) / statistics.median(bare)
    paired = statistics.median(o / b for o, b in zip(ours, bare))
    print(f"median of the rounds' own ratios {paired:.3f} (each app round over the bare round after it)")
    print(f"app median {statistics.median(ours):.2f} tok/s, bare median {statistics.median(bare):.2f} tok/s")
    print(f"window process CPU while streaming: median {statistics.median(window_cpu) * 1000:.0f} ms per second")
    print(f"stream_overhead_ratio {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
