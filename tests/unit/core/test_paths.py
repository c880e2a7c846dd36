from __future__ import annotations

import os
from pathlib import Path

import platformdirs
import pytest

from app.core import paths


def test_hearth_home_overrides_every_location(hearth_home: Path) -> None:
    assert paths.data_dir() == hearth_home / "data"
    assert paths.config_dir() == hearth_home / "config"
    assert paths.cache_dir() == hearth_home / "cache"
    assert paths.logs_dir() == hearth_home / "logs"
    assert paths.models_dir() == hearth_home / "data" / "models"
    assert paths.database_path() == hearth_home / "data" / "hearth.sqlite3"
    for folder in ("data", "config", "cache", "logs", "data/models"):
        assert (hearth_home / folder).is_dir()
    assert not paths.database_path().exists()  # the folder is made, never the database itself


def test_create_false_makes_nothing(hearth_home: Path) -> None:
    assert paths.models_dir(create=False) == hearth_home / "data" / "models"
    assert paths.database_path(create=False) == hearth_home / "data" / "hearth.sqlite3"
    assert not hearth_home.exists()


def test_env_is_read_at_call_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    monkeypatch.setenv("HEARTH_HOME", str(first))
    assert paths.config_dir() == first / "config"
    monkeypatch.setenv("HEARTH_HOME", str(second))
    assert paths.config_dir() == second / "config"


def test_relative_and_tilde_home_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEARTH_HOME", "portable")
    assert paths.data_dir(create=False) == tmp_path / "portable" / "data"
    monkeypatch.setenv("HOME", str(tmp_path / "fakehome"))
    monkeypatch.setenv("USERPROFILE", str(tmp_path / "fakehome"))  # Windows' expanduser
    monkeypatch.setenv("HEARTH_HOME", "~/hearth")
    assert paths.data_dir(create=False) == tmp_path / "fakehome" / "hearth" / "data"


def test_platform_locations_without_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_HOME", "  ")  # blank counts as unset
    assert paths.home_override() is None
    monkeypatch.delenv("HEARTH_HOME")
    expected = platformdirs.PlatformDirs(appname="Hearth", appauthor=False)
    # create=False: this test must not touch the real home folder.
    assert paths.data_dir(create=False) == expected.user_data_path
    assert paths.config_dir(create=False) == expected.user_config_path
    assert paths.cache_dir(create=False) == expected.user_cache_path
    assert paths.logs_dir(create=False) == expected.user_log_path
    assert paths.models_dir(create=False) == expected.user_data_path / "models"
    assert paths.database_path(create=False) == expected.user_data_path / "hearth.sqlite3"
    assert "Hearth" in paths.data_dir(create=False).parts


def test_a_chosen_models_folder_is_used_until_reset(hearth_home: Path, tmp_path: Path) -> None:
    default = paths.models_dir()
    chosen = tmp_path / "big-disk" / "models"
    assert paths.set_models_dir(chosen) == chosen and chosen.is_dir()
    assert paths.models_dir() == chosen
    assert not any(chosen.iterdir())  # the write test left nothing behind
    assert paths.set_models_dir(None) == default
    assert paths.models_dir() == default


def test_an_unwritable_models_folder_is_refused(hearth_home: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: use a path under a file instead
            target = tmp_path / "a-file"
            target.write_text("x")
            locked = target / "models"
        with pytest.raises(OSError):
            paths.set_models_dir(locked)
        assert paths.models_dir() == hearth_home / "data" / "models"
    finally:
        (tmp_path / "locked").chmod(0o700)
