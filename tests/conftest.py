"""Fixtures shared by every test. Keep this file small."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.keyring", "tests.fixtures.tiny_gptoss"]  # memory_keyring, tiny_gptoss_path


@pytest.fixture(autouse=True)
def hearth_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HEARTH_HOME at a fresh folder so no test writes to the real home folder."""
    home = tmp_path / "hearth-home"
    monkeypatch.setenv("HEARTH_HOME", str(home))
    return home
