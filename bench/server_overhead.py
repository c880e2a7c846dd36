"""Generation speed through `hearth serve` with a streaming client ÷ bare `llama_cpp.Llama.generate`.

The server path: `hearth serve` in its own process (uvicorn, the chat service, llama.cpp in the
engine process), a client in this process streaming `POST /v1/chat/completions` (httpx, SSE) and
timing from the first content chunk to the last; the rate is (completion tokens - 1) over that
time. The bare path: a separate bare llama-cpp-python process holding the same model with the same
plan, given the same prompt tokens, sampling and seed (bench/stream_overhead.py's BareProcess).
Each round runs them in ABBA order (BAAB in the next): a round's ratio is the server's mean rate
over its two runs ÷ the bare one's, and the figure is the median of the rounds' ratios, so a load
that changes during a round weighs on both sides.

    python bench/server_overhead.py --model FILE [--rounds 5] [--tokens 256]

Last line: server_overhead_ratio X (the median of the rounds' ratios; target >= 0.97).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from app.core.engine import GenerateRequest  # noqa: E402
from app.core.formats.base import Conversation, Message  # noqa: E402
from bench.bare import SAMPLING, BareProcess  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Write a long story about a lighthouse keeper and a storm, with many details."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model: str, ctx: int, home: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {**os.environ, "HEARTH_HOME": home}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--model", model, "--port", str(port), "--ctx", str(ctx)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    if "serving" not in line:
        raise SystemExit(f"hearth serve did not start: {line}{proc.stderr.read()[-2000:]}")
    return proc, f"http://127.0.0.1:{port}/v1"


def stream_rate(client: httpx.Client, url: str, model: str, tokens: int) -> tuple[float, int, float]:
    """(tokens/s from the first content chunk to the last, completion tokens, time to first chunk)."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
        "temperature": SAMPLING.temperature,
        "top_p": SAMPLING.top_p,
        "top_k": SAMPLING.top_k,
        "min_p": SAMPLING.min_p,
        "seed": SAMPLING.seed,
    }
    first = last = 0.0
    n = 0
    sent = time.perf_counter()
    with client.stream("POST", f"{url}/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                n = chunk["usage"]["completion_tokens"]
            choices = chunk.get("choices") or []
            if choices and choices[0].get("delta", {}).get("content"):
                now = time.perf_counter()
                first = first or now
                last = now
    return (n - 1) / (last - first), n, first - sent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--ctx", type=int, default=4096)
    args = ap.parse_args()
    model_id = Path(args.model).stem
    request = GenerateRequest(Conversation((Message("user", PROMPT),)), sampling=SAMPLING)
    with tempfile.TemporaryDirectory(prefix="hearth-bench-") as home:
        proc, url = start_server(args.model, args.ctx, home)
        bare = BareProcess(args.model, args.ctx)
        ours: list[float] = []
        theirs: list[float] = []
        paired: list[float] = []
        try:
            with httpx.Client(timeout=600) as client:
                stream_rate(client, url, model_id, 16)  # warm-up, not counted: first request, first pages
                bare.rate(request, 16)
                for i in range(args.rounds):
                    # ABBA (BAAB in the next round): each side's two runs straddle the other's.
                    order = ("server", "bare", "bare", "server") if i % 2 == 0 else ("bare", "server", "server", "bare")
                    got: dict[str, list[float]] = {"server": [], "bare": []}
                    for side in order:
                        if side == "server":
                            rate, n, ttft = stream_rate(client, url, model_id, args.tokens)
                            got["server"].append(rate)
                        else:
                            b, nb = bare.rate(request, args.tokens)
                            got["bare"].append(b)
                    ours.append(statistics.fmean(got["server"]))
                    theirs.append(statistics.fmean(got["bare"]))
                    paired.append(ours[-1] / theirs[-1])
                    print(
                        f"round {i + 1}: server {got['server'][0]:.2f}+{got['server'][1]:.2f} tok/s ({n} tokens, "
                        f"first chunk after {ttft:.2f} s), bare {got['bare'][0]:.2f}+{got['bare'][1]:.2f} tok/s "
                        f"({nb} tokens) | ratio {paired[-1]:.3f}",
                        flush=True,
                    )
        finally:
            bare.close()
            proc.terminate()
            proc.wait(60)
    print(f"server median {statistics.median(ours):.2f} tok/s, bare median {statistics.median(theirs):.2f} tok/s")
    print(f"ratio of the medians {statistics.median(ours) / statistics.median(theirs):.3f}")
    print(f"server_overhead_ratio {statistics.median(paired):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
