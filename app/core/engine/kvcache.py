"""Saved KV state per conversation: a long chat resumes as quickly as a new one.

When the engine moves to another conversation, unloads or exits, it writes the conversation's
llama.cpp state (`llama_state_get_data`: the whole context, every cell in place) with the exact
tokens it belongs to; when that conversation is answered again with the same model file, load
parameters and llama.cpp build, the state is read back and only the tokens after it are evaluated.

One file per conversation under cache_dir()/kv/<key>/, where the key hashes what must match for a
state to be valid: the model file (size, modification time and three 1 MiB samples — hashing 12 GB
on every load would cost a minute), the load parameters that shape the cache, llama.cpp's version
and build, and this format's version. A file is written to a temporary name and renamed, so a
reader (another Hearth on the same data folder too) never sees half of one; its header carries the
payload's length and SHA-256, so a truncated or damaged file is detected before llama.cpp sees a
byte of it, and removed. The folder is kept under a size cap by deleting the least recently used
states.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core import paths

log = logging.getLogger("hearth.kvcache")

MAGIC = b"HEARTHKV"
FORMAT_VERSION = 2  # 2: the whole context's state (1 was sequence 0's, without the cells outside the window)
SUFFIX = ".kv"
DEFAULT_CAP_BYTES = 4 << 30
MIN_TOKENS = 32  # shorter conversations cost less to evaluate than to save
_HEADER_LIMIT = 64 << 20  # the token list of a 1M-token context fits; a corrupt length does not
_SAMPLE = 1 << 20
_SESSION = re.compile(r"^[A-Za-z0-9_.-]{1,96}$")


CAP_FILE = "kv-cache-cap"  # in the config folder: the Settings choice, in bytes (0: keep none)
CAP_CHOICES = (0, 1 << 30, 4 << 30, 16 << 30, 64 << 30)  # what Settings offers


def cache_root() -> Path:
    return paths.cache_dir() / "kv"


def configured_cap() -> int:
    """The size cap chosen in Settings (bytes; 0: chats' KV states are not kept), or the default."""
    try:
        text = (paths.config_dir(create=False) / CAP_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return DEFAULT_CAP_BYTES
    return int(text) if text.isdigit() and int(text) in CAP_CHOICES else DEFAULT_CAP_BYTES


def set_configured_cap(cap_bytes: int, root: Path | None = None) -> int:
    """Save the Settings choice and bring the folder under it now; returns the bytes freed.
    Raises OSError when the config folder is not writable, ValueError for a size not offered."""
    if cap_bytes not in CAP_CHOICES:
        raise ValueError(f"{cap_bytes} is not one of the offered sizes")
    target = paths.config_dir() / CAP_FILE
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(str(cap_bytes), encoding="utf-8")
    os.replace(tmp, target)
    folder = root or cache_root()
    return enforce_cap(cap_bytes, folder) if folder.is_dir() else 0


def model_fingerprint(path: Path) -> str:
    """Cheap identity of a model file: size, mtime and three 1 MiB samples (start, middle, end)."""
    st = path.stat()
    digest = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode())
    with path.open("rb") as f:
        for offset in (0, max(0, st.st_size // 2 - _SAMPLE // 2), max(0, st.st_size - _SAMPLE)):
            f.seek(offset)
            digest.update(f.read(_SAMPLE))
    return digest.hexdigest()


def state_key(fingerprint: str, parameters: dict[str, Any], build: str) -> str:
    """The folder name for states that may be restored into this model, plan and build."""
    blob = json.dumps(
        {"model": fingerprint, "parameters": parameters, "build": build, "format": FORMAT_VERSION}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def session_path(key: str, session: str, root: Path | None = None) -> Path:
    if not _SESSION.match(session):
        raise ValueError(f"not a session name: {session!r}")
    return (root or cache_root()) / key / (session + SUFFIX)


@dataclass(frozen=True)
class SavedState:
    tokens: list[int]
    data: bytearray  # llama.cpp's state, exactly as llama_state_get_data wrote it


def write_state(path: Path, key: str, tokens: list[int], data: bytes | memoryview) -> int:
    """Write a state atomically; returns its size on disk. Raises OSError (disk full, read-only):
    the caller goes on without it, and no partial file is left."""
    header = json.dumps(
        {
            "version": FORMAT_VERSION,
            "key": key,
            "tokens": tokens,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    ).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(MAGIC + struct.pack("<I", len(header)) + header)
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(MAGIC) + 4 + len(header) + len(data)


def read_state(path: Path, key: str, max_tokens: int) -> SavedState | None:
    """The state in `path` if it is whole and belongs to `key`; otherwise None, and a file that is
    truncated, damaged, from another model or build, or from an older Hearth is removed."""
    try:
        with path.open("rb") as f:
            head = f.read(len(MAGIC) + 4)
            if len(head) < len(MAGIC) + 4 or head[: len(MAGIC)] != MAGIC:
                return _discard(path, "not a Hearth KV state")
            (n,) = struct.unpack("<I", head[len(MAGIC) :])
            if n > _HEADER_LIMIT:
                return _discard(path, "a damaged header")
            header = json.loads(f.read(n))
            if not isinstance(header, dict) or header.get("version") != FORMAT_VERSION:
                return _discard(path, "another version of the format")
            if header.get("key") != key:
                return _discard(path, "another model, plan or llama.cpp build")
            tokens, size = header.get("tokens"), header.get("size")
            if not isinstance(tokens, list) or not isinstance(size, int) or not 0 < len(tokens) < max_tokens:
                return _discard(path, "a token list that does not fit")
            if not all(isinstance(t, int) and 0 <= t < (1 << 31) for t in tokens):
                return _discard(path, "a damaged token list")
            if os.fstat(f.fileno()).st_size - f.tell() != size:  # also bounds the buffer below
                return _discard(path, "it is truncated or damaged")
            # Read straight into the buffer llama.cpp is handed (no copy on the way: restoring is on
            # the path to the next reply's first token).
            data = bytearray(size)
            got = f.readinto(data)
            trailing = f.read(1)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return _discard(path, f"it cannot be read ({exc})")
    if got != size or trailing or hashlib.sha256(data).hexdigest() != header.get("sha256"):
        return _discard(path, "it is truncated or damaged")
    try:
        os.utime(path)  # least recently *used* is what the cap evicts
    except OSError:
        pass
    return SavedState(tokens, data)


def _discard(path: Path, why: str) -> SavedState | None:
    log.info("ignoring the saved KV state %s: %s", path, why)
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass
    return None


def forget_session(session: str, root: Path | None = None) -> int:
    """Remove a conversation's saved states (for every model); returns how many."""
    if not _SESSION.match(session):
        return 0
    removed = 0
    for path in (root or cache_root()).glob(f"*/{session}{SUFFIX}"):
        try:
            path.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def enforce_cap(cap_bytes: int, root: Path | None = None, keep: Path | None = None) -> int:
    """Delete the least recently used states until the folder is under `cap_bytes` (never `keep`,
    the one just written, unless it alone is over the cap); returns the bytes freed."""
    files: list[tuple[float, int, Path]] = []
    folder = root or cache_root()
    for tmp in folder.glob("*/.*.tmp"):  # left by an engine killed mid-write
        try:
            if tmp.stat().st_mtime < time.time() - 3600:
                tmp.unlink()
        except OSError:
            pass
    for path in folder.glob(f"*/*{SUFFIX}"):
        try:
            st = path.stat()
        except OSError:
            continue
        files.append((st.st_mtime, st.st_size, path))
    total = sum(size for _t, size, _p in files)
    freed = 0
    for _mtime, size, path in sorted(files, key=lambda f: (f[2] == keep, f[0])):
        if total <= cap_bytes:
            break
        try:
            path.unlink()
        except OSError:
            continue
        total -= size
        freed += size
    return freed


def total_bytes(root: Path | None = None) -> int:
    total = 0
    for path in (root or cache_root()).glob(f"*/*{SUFFIX}"):
        try:
            total += path.stat().st_size
        except OSError:
            pass
    return total
