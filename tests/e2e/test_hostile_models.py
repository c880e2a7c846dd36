"""Hostile model files: every mutated GGUF of tests/fixtures/hostile_mutations.py (251 files from
the real starter and the tiny gpt-oss) goes through the validator, the Library's import
(`catalog.import_model`, what its Import button runs) and, when both accept it, a real load in an
engine process and a short reply. Each must be refused with a sentence or load and answer; the
test's own process (standing in for the window's) must never crash, and nothing may hang.

What llama.cpp itself does with a file the validator accepted is counted too: a load failure or an
engine process that dies is told in a sentence by the engine host, and costs the engine process
only (tests/e2e/test_engine_process.py proves the boundary for files that make llama.cpp abort).
CI runs every fifth file; HEARTH_FULL_RELIABILITY=1 runs all of them.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.core import catalog
from app.core.catalog import CatalogError
from app.core.engine.host import LocalBackend
from app.core.engine.types import EngineCrashedError, EngineError, GenerateRequest, Sampling
from app.core.formats.base import Conversation, Done, Message
from app.core.gguf_file import GGUFError, inspect_gguf
from tests import reliability
from tests.fixtures.hostile_mutations import Mutation, mutations

# The full run loads ~50 files in engine processes: longer than the suite's 600 s per test.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(4 * 3600 if reliability.full() else 1200)]

DEADLINE_S = 300.0  # a safety net for a hang, never a performance check
GREEDY = Sampling(temperature=0.0, seed=3)


# Files a full run once found a problem with: CI runs them too.
REGRESSIONS = ("tiny-tokenizer-rwkv",)  # loads, then llama_decode fails: the reply said it without a full stop


def chosen() -> list[Mutation]:
    every = mutations()
    if reliability.full():
        return every
    picked = every[::5]
    return picked + [m for m in every if m.name in REGRESSIONS and m not in picked]


def is_sentence(text: str) -> bool:
    text = text.strip()
    return (
        bool(text)
        and "\n" not in text
        and text[-1] in ".)'\""
        and "Traceback" not in text
        and "unexpected error" not in text
        and len(text) <= 600
    )


class Hang(Exception):
    pass


def within_deadline(step: Callable[[], Any]) -> Any:
    """Run `step` on a thread; raise Hang if it has not returned in DEADLINE_S."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = step()
        except BaseException as exc:  # handed back to the caller
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    if thread.is_alive():
        raise Hang(f"no answer within {DEADLINE_S:.0f} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.fixture(scope="module")
def backend() -> Iterator[LocalBackend]:
    b = LocalBackend()
    yield b
    b.close()


def _answer(backend: LocalBackend) -> Done:
    request = GenerateRequest(Conversation((Message("user", "Hello"),)), max_tokens=4, sampling=GREEDY)
    for event in backend.generate(request):
        if isinstance(event, Done):
            return event
    raise AssertionError("the reply never ended")


def test_hostile_model_files(backend: LocalBackend, tmp_path: Path) -> None:
    cases = chosen()
    outcomes: collections.Counter[str] = collections.Counter()
    kinds: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    models = tmp_path / "models"
    slowest: list[tuple[float, str]] = []
    for case in cases:
        started = time.monotonic()
        kinds[case.kind] += 1
        path = case.write(tmp_path)
        try:
            outcome = _try(case, path, backend, models)
        except Hang as exc:
            outcome = "hang"
            problems.append(f"{case.name}: {exc}")
        except Exception as exc:  # anything that is not a sentence would reach the window
            outcome = "not a sentence"
            problems.append(f"{case.name}: {type(exc).__name__}: {exc}"[:300])
        outcomes[outcome] += 1
        slowest = sorted([*slowest, (time.monotonic() - started, f"{case.name}: {outcome}")], reverse=True)[:5]
        if path.name != "tiny-gpt-oss-base.gguf":
            path.unlink(missing_ok=True)
    reliability.report(
        "hostile_models",
        files=len(cases),
        by_kind=dict(sorted(kinds.items())),
        outcomes=dict(sorted(outcomes.items())),
        window_crashes=0,  # this process is still here
        hangs=outcomes["hang"],
        slowest=[f"{name} ({s:.1f} s)" for s, name in slowest],
    )
    assert len(cases) >= (200 if reliability.full() else 40)
    assert problems == []
    assert outcomes["refused by the validator"] >= len(cases) // 2  # the validator does most of the work
    assert outcomes["loaded and answered"] >= 1


def _try(case: Mutation, path: Path, backend: LocalBackend, models: Path) -> str:
    try:
        within_deadline(lambda: inspect_gguf(path))
    except GGUFError as exc:
        assert is_sentence(str(exc)), f"{case.name}: the validator said {exc!r}"
        try:
            within_deadline(lambda: catalog.import_model(path, models_dir=models))
        except CatalogError as refused:
            assert is_sentence(str(refused)) and str(exc) in str(refused), f"{case.name}: {refused!r}"
        else:
            raise AssertionError(f"{case.name}: the Library imported a file the validator refuses")
        return "refused by the validator"
    installed = within_deadline(lambda: catalog.import_model(path, models_dir=models))
    assert installed.problem is None and installed.path == path.resolve(), case.name
    catalog.delete_model(installed.id, models_dir=models)  # only forgotten: the file is outside
    assert path.exists()
    try:
        within_deadline(lambda: backend.load(path, ctx_cap=512))
    except EngineCrashedError as exc:
        assert is_sentence(str(exc)), f"{case.name}: {exc!r}"
        return "engine process died, told in a sentence"
    except (EngineError, GGUFError) as exc:
        assert is_sentence(str(exc)), f"{case.name}: {exc!r}"
        return "refused by llama.cpp, told in a sentence"
    done = within_deadline(lambda: _answer(backend))
    if done.stop_reason == "crashed":
        assert done.error and is_sentence(done.error), f"{case.name}: {done.error!r}"
        return "engine process died, told in a sentence"
    if done.stop_reason == "error":  # llama.cpp failed mid-reply (a wrong tokenizer's ids, say)
        assert done.error and is_sentence(done.error), f"{case.name}: {done.error!r}"
        return "loaded, the reply failed with a sentence"
    assert done.stop_reason in ("stop", "length") and done.error is None, f"{case.name}: {done}"
    return "loaded and answered"
