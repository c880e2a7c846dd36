"""Every location Hearth reads or writes, from platformdirs.

The environment variable HEARTH_HOME, when set, replaces all of them with folders under one
root (HEARTH_HOME/data, /config, /cache, /logs, /data/models): tests, portable installs and
people who want everything on another disk use it. These are functions, not constants, because
the environment may change after import (tests do that), and each creates its folder on demand.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "Hearth"
HOME_ENV = "HEARTH_HOME"
DATABASE_FILENAME = "hearth.sqlite3"


def home_override() -> Path | None:
    """The HEARTH_HOME folder as an absolute path, or None when it is unset or empty."""
    value = os.environ.get(HOME_ENV, "").strip()
    if not value:
        return None
    return Path(value).expanduser().absolute()


def _dirs() -> platformdirs.PlatformDirs:
    # appauthor=False: otherwise Windows nests the app folder in a same-named "author" folder.
    return platformdirs.PlatformDirs(appname=APP_NAME, appauthor=False)


def _ensure(path: Path, create: bool) -> Path:
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir(create: bool = True) -> Path:
    """Where the user's own data lives: the chat database and the models."""
    home = home_override()
    return _ensure(home / "data" if home else _dirs().user_data_path, create)


def config_dir(create: bool = True) -> Path:
    home = home_override()
    return _ensure(home / "config" if home else _dirs().user_config_path, create)


def cache_dir(create: bool = True) -> Path:
    """Things that can be rebuilt (hardware probe results, thumbnails): safe to delete."""
    home = home_override()
    return _ensure(home / "cache" if home else _dirs().user_cache_path, create)


def logs_dir(create: bool = True) -> Path:
    home = home_override()
    return _ensure(home / "logs" if home else _dirs().user_log_path, create)


MANIFEST_NAME = "manifest.json"  # in models_dir(): where each installed model came from (catalog.py)
JOBS_FILE = "jobs.json"  # in downloads_dir(): the download queue (downloads.py)
MODELS_FOLDER_FILE = "models-folder.txt"  # in config_dir(): the folder the user picked, if any


class ModelsFolderUnavailable(OSError):
    """The folder the user chose for models is gone (a drive that is not connected, say)."""


def _chosen_models_dir() -> Path | None:
    try:
        chosen = (config_dir(create=False) / MODELS_FOLDER_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        chosen = ""
    return Path(chosen) if chosen and Path(chosen).is_absolute() else None


def models_folder_problem() -> str | None:
    """A sentence when the chosen models folder is not there, else None (one stat)."""
    chosen = _chosen_models_dir()
    if chosen is None or chosen.is_dir():
        return None
    return (
        f"The models folder {chosen} is not available (is its drive connected?): reconnect it, or choose "
        "another folder in Settings."
    )


def models_dir(create: bool = True) -> Path:
    """Downloaded and imported model files: the folder the user picked (the Library's "Models
    folder…"), else under data, not cache, because they cost hours.

    A chosen folder that has gone (its drive unplugged) is never re-created: that would write
    models onto the empty mount point. With `create` it raises ModelsFolderUnavailable instead."""
    chosen = _chosen_models_dir()
    if chosen is not None:
        problem = models_folder_problem() if create else None
        if problem is not None:
            raise ModelsFolderUnavailable(problem)
        return chosen
    return _ensure(data_dir(create) / "models", create)


def downloads_dir(create: bool = True) -> Path:
    """Partial downloads and the download queue, until a verified model moves to models_dir()."""
    return _ensure(data_dir(create) / "downloads", create)


def set_models_dir(folder: str | Path | None) -> Path:
    """Keep models in `folder` from now on (None: back to the default). The folder must be
    writable; files already in the old folder stay where they are. Returns the folder in use."""
    setting = config_dir() / MODELS_FOLDER_FILE
    if folder is None:
        setting.unlink(missing_ok=True)
        return models_dir()
    target = Path(folder).expanduser().absolute()
    target.mkdir(parents=True, exist_ok=True)
    probe = target / f".hearth-write-test-{os.getpid()}"
    probe.write_bytes(b"")  # raises PermissionError / OSError when models could not be saved there
    probe.unlink()
    tmp = setting.with_name(setting.name + ".tmp")
    tmp.write_text(str(target), encoding="utf-8")
    os.replace(tmp, setting)
    return target


def database_path(create: bool = True) -> Path:
    """The SQLite chat database; `create` makes its folder, never the file itself."""
    return data_dir(create) / DATABASE_FILENAME
