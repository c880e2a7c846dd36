"""Run in a child process whose environment picks a llama.cpp build (llama_builds.child_env):
load a model with n_gpu_layers, then report as one JSON line on stdout the layers llama.cpp
offloaded (from its own log), the first greedy tokens, and, with --teacher, the top-1 token at
each position of a given continuation (teacher forcing).

    python -m tests.e2e.llama_child MODEL --prompt TEXT --greedy N [--teacher TOKENS_JSON] [--n-gpu-layers K]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--prompt", required=True)
    p.add_argument("--greedy", type=int, default=8)
    p.add_argument("--teacher", help="JSON list of token ids continuing the prompt")
    p.add_argument("--n-gpu-layers", type=int, default=-1)
    args = p.parse_args()
    # llama.cpp logs through stderr (fd 2): keep a copy to read the offload line from.
    log = tempfile.TemporaryFile(mode="w+b")
    saved = os.dup(2)
    os.dup2(log.fileno(), 2)
    try:
        import llama_cpp

        llm = llama_cpp.Llama(args.model, n_gpu_layers=args.n_gpu_layers, n_ctx=512, n_batch=128, seed=1,
                              logits_all=bool(args.teacher), verbose=True)  # fmt: skip
        prompt = llm.tokenize(args.prompt.encode(), add_bos=True, special=False)
        greedy: list[int] = []
        for token in llm.generate(prompt, temp=0.0, top_k=1, top_p=1.0, repeat_penalty=1.0):
            greedy.append(int(token))
            if len(greedy) >= args.greedy:
                break
        top1: list[int] = []
        if args.teacher:
            teacher = json.loads(args.teacher)
            llm.reset()
            llm.eval(prompt + teacher)
            scores = llm.scores
            start = len(prompt) - 1  # the logits at position i predict token i + 1
            top1 = [int(scores[i].argmax()) for i in range(start, start + len(teacher))]
        gpu = bool(llama_cpp.llama_supports_gpu_offload())
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
    log.seek(0)
    text = log.read().decode("utf-8", "replace")
    m = re.search(r"offloaded (\d+)/(\d+) layers to GPU", text)
    devices = re.findall(r"ggml_vulkan: \d+ = ([^|\n]+)", text)
    print(json.dumps({"offloaded": [int(m.group(1)), int(m.group(2))] if m else None, "greedy": greedy,
                      "top1": top1, "gpu_offload": gpu, "vulkan_devices": [d.strip() for d in devices]}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
