"""Sampling (one type, validated), the catalog's per-model defaults, and per-job cancel tokens."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from app.core.engine.types import GPT_OSS_SAMPLING, CancelToken, Sampling, default_sampling
from app.core.gguf_file import inspect_gguf


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": float("nan")},
        {"temperature": -1.0},
        {"top_p": 1.5},
        {"min_p": -0.1},
        {"top_k": -1},
        {"top_k": 2.5},
        {"repeat_penalty": 0.0},
        {"temperature": float("inf")},
        {"top_p": True},
    ],
)
def test_nonsense_sampling_is_refused_with_a_sentence(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="must|out of range"):
        Sampling(**kwargs)


def test_sampling_round_trips_through_a_dict_and_ignores_unknown_keys() -> None:
    s = Sampling(temperature=0.3, top_k=5, seed=9)
    assert Sampling.from_dict({**s.to_dict(), "mirostat": 2}) == s


def test_a_catalog_model_gets_its_catalog_sampling(tiny_gptoss_path: Path) -> None:
    info = inspect_gguf(tiny_gptoss_path)
    qwen = replace(info, architecture="qwen3", path=Path("/models/Qwen3-4B-Instruct-2507-Q4_K_M.gguf"))
    assert default_sampling(qwen) == Sampling(temperature=0.7, top_p=0.8, top_k=20, min_p=0.0)
    gemma = replace(info, architecture="gemma3", path=Path("/m/gemma-3-4b-it-qat-Q4_0.gguf"))
    assert default_sampling(gemma) == Sampling(temperature=1.0, top_p=0.95, top_k=64, min_p=0.0)
    # Not in the catalog: gpt-oss gets OpenAI's values, anything else the general default.
    assert default_sampling(info) == GPT_OSS_SAMPLING
    assert default_sampling(replace(info, architecture="llama", path=Path("/m/other.gguf"))) == Sampling()


def test_a_cancel_token_calls_back_once_set_even_when_registered_late() -> None:
    calls: list[str] = []
    token = CancelToken()
    token.on_cancel(lambda: calls.append("early"))
    assert calls == []
    token.set()
    token.on_cancel(lambda: calls.append("late"))
    token.set()  # a second Stop does not call anyone twice
    assert calls == ["early", "late"] and token.is_set()


def test_a_cancel_token_is_safe_across_threads() -> None:
    token = CancelToken()
    calls: list[int] = []
    lock = threading.Lock()

    def register(i: int) -> None:
        def add() -> None:
            with lock:
                calls.append(i)

        token.on_cancel(add)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(50)]
    for t in threads[:25]:
        t.start()
    setter = threading.Thread(target=token.set)
    setter.start()
    for t in threads[25:]:
        t.start()
    for t in [*threads, setter]:
        t.join()
    assert sorted(calls) == list(range(50))  # every callback exactly once
