"""Memory the app costs on top of llama.cpp: resident set of the whole app with the model loaded —
the window's process plus its engine process (real window offscreen, model loaded through the
picker path, one short reply streamed so llama.cpp's buffers are touched) — minus a bare
llama-cpp-python process holding the same model with
the same load parameters (the planner's plan: context, batch, threads, cache types, mmap) after
the same short reply. Each side runs in its own fresh process; the medians of --rounds are used.

    python bench/memory.py --model FILE [--ctx 4096] [--rounds 3]

Last line: memory_overhead_mb X (target <= 150).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Say hello."
TOKENS = 8


def rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def child_app(model: str, ctx: int) -> int:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from app.core.engine import Sampling
    from app.core.store import ChatStore
    from app.gui.app import application
    from app.gui.main_window import MainWindow
    from app.gui.model_picker import ModelEntry
    from app.gui.selftest import wait_for
    from app.gui.theme import ThemeManager

    app = application()
    ThemeManager(app)
    store = ChatStore(Path(os.environ["HEARTH_HOME"]) / "bench.sqlite3")
    window = MainWindow(store, ctx_cap=ctx, autoload=False)
    window.show()
    path = Path(model)
    window.load_model(ModelEntry(str(path), path.stem, path, path.stat().st_size))
    index, args = wait_for([window.modelLoaded, window.modelFailed], 1800)
    if index:
        raise SystemExit(f"load failed: {args[0]}")
    window.session.max_tokens = TOKENS
    window.session.sampling = Sampling(temperature=0.0, seed=1)
    window.composer.set_text(PROMPT)
    window.composer.button.click()
    wait_for([window.session.replyFinished], 1800)
    import psutil

    pid = window.engine.service.backend_pid
    assert pid is not None
    engine_rss = int(psutil.Process(pid).memory_info().rss)
    print(json.dumps({"rss": rss() + engine_rss, "window": rss(), "engine": engine_rss, "plan": args[0].reason}))
    window.close()
    return 0


def child_bare(model: str, ctx: int) -> int:
    sys.path.insert(0, str(ROOT))
    from app.core.gguf_file import inspect_gguf  # the plan only; the load below is bare llama_cpp
    from app.core.hardware import probe
    from app.core.planner import plan_load

    info = inspect_gguf(model)
    plan = plan_load(probe(), info, ctx_cap=ctx)
    import llama_cpp

    kv = {"f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0, "f32": llama_cpp.GGML_TYPE_F32}
    llm = llama_cpp.Llama(
        model,
        n_gpu_layers=plan.n_gpu_layers,
        n_ctx=plan.n_ctx,
        n_batch=plan.n_batch,
        n_ubatch=plan.n_ubatch,
        n_threads=plan.n_threads,
        n_threads_batch=plan.n_threads_batch,
        flash_attn=plan.flash_attn,
        type_k=kv[plan.type_k],
        type_v=kv[plan.type_v],
        use_mmap=plan.use_mmap,
        swa_full=plan.swa_full if info.sliding_window else None,
        verbose=False,
    )
    tokens = llm.tokenize(f"User: {PROMPT}\nAssistant:".encode(), add_bos=True, special=True)
    for i, _token in enumerate(llm.generate(tokens, temp=0.0)):
        if i + 1 >= TOKENS:
            break
    print(json.dumps({"rss": rss(), "plan": plan.reason}))
    return 0


def measure(kind: str, model: str, ctx: int, home: str) -> dict[str, object]:
    env = {**os.environ, "HEARTH_HOME": home, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--model", model, "--ctx", str(ctx)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if out.returncode != 0:
        raise SystemExit(f"{kind} run failed: {out.stderr[-2000:]}")
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", choices=("app", "bare"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "app":
        return child_app(args.model, args.ctx)
    if args.child == "bare":
        return child_bare(args.model, args.ctx)
    mb = 1024 * 1024
    apps, bares = [], []
    with tempfile.TemporaryDirectory(prefix="hearth-bench-") as home:
        for i in range(args.rounds):
            a, b = measure("app", args.model, args.ctx, home), measure("bare", args.model, args.ctx, home)
            apps.append(int(a["rss"]))  # type: ignore[call-overload]
            bares.append(int(b["rss"]))  # type: ignore[call-overload]
            print(
                f"round {i + 1}: app {apps[-1] / mb:.0f} MB (window {int(a['window']) / mb:.0f} MB + engine "  # type: ignore[call-overload]
                f"{int(a['engine']) / mb:.0f} MB), bare llama-cpp-python {bares[-1] / mb:.0f} MB"  # type: ignore[call-overload]
                + (f"  ({a['plan']})" if i == 0 else ""),
                flush=True,
            )
    overhead = (statistics.median(apps) - statistics.median(bares)) / mb
    print(f"memory_overhead_mb {overhead:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
