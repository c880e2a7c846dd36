"""Saved KV states on disk: atomic, verified, bounded, forgettable (no llama.cpp here: the state
bytes are opaque to this module; tests/e2e/test_kv_state.py saves and restores real ones)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from app.core.engine import kvcache

KEY = "k" * 32


def write(root: Path, session: str, n: int = 100, size: int = 1000, key: str = KEY) -> Path:
    path = kvcache.session_path(key, session, root)
    kvcache.write_state(path, key, list(range(n)), os.urandom(size))
    return path


def test_a_state_round_trips_exactly(tmp_path: Path) -> None:
    data = os.urandom(5000)
    path = kvcache.session_path(KEY, "c1-5", tmp_path)
    kvcache.write_state(path, KEY, [5, 6, 7] * 20, data)
    saved = kvcache.read_state(path, KEY, max_tokens=4096)
    assert saved is not None and saved.tokens == [5, 6, 7] * 20 and saved.data == data


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic", "header", "empty"])
def test_a_damaged_state_is_ignored_and_removed(tmp_path: Path, damage: str) -> None:
    path = write(tmp_path, "c1-5")
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) - 10]
    elif damage == "flip":
        raw[-1] ^= 0xFF
    elif damage == "magic":
        raw[:8] = b"NOTHEART"
    elif damage == "header":
        raw[12:20] = b"\xff" * 8
    else:
        raw = bytearray()
    path.write_bytes(bytes(raw))
    assert kvcache.read_state(path, KEY, max_tokens=4096) is None
    assert not path.exists()


def test_a_state_of_another_model_plan_or_build_is_ignored_and_removed(tmp_path: Path) -> None:
    path = write(tmp_path, "c1-5", key="other" * 6 + "ab")
    assert kvcache.read_state(path, KEY, max_tokens=4096) is None and not path.exists()


def test_a_state_longer_than_the_context_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "c1-5", n=5000)
    assert kvcache.read_state(path, KEY, max_tokens=4096) is None and not path.exists()


def test_keys_differ_for_anything_that_changes_the_cache(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(os.urandom(3 << 20))
    fp = kvcache.model_fingerprint(model)
    base = kvcache.state_key(fp, {"n_ctx": 4096, "type_k": "f16"}, "0.3.36|cpu")
    assert base == kvcache.state_key(fp, {"type_k": "f16", "n_ctx": 4096}, "0.3.36|cpu")
    assert base != kvcache.state_key(fp, {"n_ctx": 8192, "type_k": "f16"}, "0.3.36|cpu")
    assert base != kvcache.state_key(fp, {"n_ctx": 4096, "type_k": "f16"}, "0.3.36|vulkan")
    with model.open("r+b") as f:  # the same size, one byte changed in the middle
        f.seek(3 << 19)
        f.write(b"\x00" if f.read(1) != b"\x00" else b"\x01")
    os.utime(model, ns=(0, 0))
    assert kvcache.model_fingerprint(model) != fp


def test_a_reader_never_sees_half_a_state(tmp_path: Path) -> None:
    """Another Hearth on the same data folder reads while this one writes: every read is either
    nothing or a whole state."""
    path = kvcache.session_path(KEY, "c1-5", tmp_path)
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            kvcache.write_state(path, KEY, [i % 7] * 64, bytes([i % 251]) * 400_000)

    thread = threading.Thread(target=writer)
    thread.start()
    seen = 0
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            saved = kvcache.read_state(path, KEY, max_tokens=4096)
            if saved is not None:
                seen += 1
                assert len(saved.data) == 400_000 and len(set(saved.data)) == 1
    finally:
        stop.set()
        thread.join()
    assert seen > 0
    assert not list(tmp_path.rglob("*.tmp"))


def test_the_cap_evicts_the_least_recently_used(tmp_path: Path) -> None:
    paths = [write(tmp_path, f"c{i}-1", size=100_000) for i in range(5)]
    for i, path in enumerate(paths):
        os.utime(path, (1000 + i, 1000 + i))
    os.utime(paths[0], (5000, 5000))  # c0 was used last
    freed = kvcache.enforce_cap(310_000, tmp_path, keep=paths[4])  # room for three
    assert freed > 0 and kvcache.total_bytes(tmp_path) <= 310_000
    assert [p.exists() for p in paths] == [True, False, False, True, True]


def test_forgetting_a_conversation_removes_its_states_for_every_model(tmp_path: Path) -> None:
    a = write(tmp_path, "c3-77", key="a" * 32)
    b = write(tmp_path, "c3-77", key="b" * 32)
    other = write(tmp_path, "c4-77")
    assert kvcache.forget_session("c3-77", tmp_path) == 2
    assert not a.exists() and not b.exists() and other.exists()


def test_a_full_or_unwritable_disk_leaves_nothing_behind(tmp_path: Path) -> None:
    blocker = tmp_path / "kv"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(OSError):
        kvcache.write_state(kvcache.session_path(KEY, "c1-5", blocker), KEY, [1] * 64, b"x" * 100)
    assert blocker.read_text() == "a file where the folder should be"


def test_session_names_are_checked() -> None:
    with pytest.raises(ValueError):
        kvcache.session_path(KEY, "../../etc/passwd")
