"""Download jobs on huggingface_hub: a queue, pause / resume / cancel, resume from partial data
after a pause, a network loss, a restart or a crash, verification, then an atomic install.

Why not `hf_hub_download`: in huggingface_hub 2.x it writes each attempt to a process-unique
`<blob>.<uuid>.incomplete` file and deletes it when the call fails, so nothing survives a pause, a
restart or a crash (and its retries cannot be interrupted). We use the library's lower-level pieces
instead: `HfApi.model_info(files_metadata=True)` for sizes, LFS sha256 and the commit, `hf_hub_url`
and `build_hf_headers` for the request, `http_stream_backoff` + `hf_raise_for_status` for the
streamed GET and the hub's typed errors. The bytes go to our own `<file>.part` in a staging folder
under the data folder, appended to with an HTTP Range request on every resume.

One job = one model (all parts of a split GGUF). The worker thread runs one job at a time; the
state is persisted to `downloads/jobs.json` so jobs survive restarts. Each file is verified (size,
and sha256 from the catalog or else the hub's LFS metadata) as soon as it is complete; the hash is
computed on a second thread while the data arrives, so verification costs no extra pass over a
12 GB file. When every file is verified they are moved into `<models>/<model id>/` and only then
written to the manifest: until that moment nothing is shown as installed.

Progress reaches listeners as `DownloadJob` snapshots, called from the worker thread (the GUI
adapts them to Qt signals). The Hugging Face token comes from the keyring (app/core/secrets.py)
and is scrubbed from every message. Nothing here touches the network until a job runs.
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import functools
import hashlib
import json
import logging
import os
import queue
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from app.core import locks, netlog, paths, secrets

log = logging.getLogger(__name__)

JOBS_FILE = paths.JOBS_FILE
LIBRARY_NAME = "hearth"
DEFAULT_DISK_MARGIN = 512 * 1024**2  # room left for the OS, the chat database, logs
_HASH_READ = 8 * 1024**2
_PERSIST_INTERVAL = 2.0  # seconds between progress saves (the .part size is the truth anyway)
_write = os.write  # the one place bytes reach the disk (tests inject a full disk here)
_SPLIT_NAME = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    VERIFYING = "verifying"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATES = frozenset({JobState.QUEUED, JobState.RUNNING, JobState.VERIFYING})
RESTING_STATES = frozenset({JobState.PAUSED, JobState.DONE, JobState.FAILED, JobState.CANCELLED})


class ErrorKind(str, enum.Enum):
    NETWORK = "network"  # retries exhausted: paused, resume to try again
    GATED = "gated"  # needs a licence accepted on the hub and a token
    NOT_FOUND = "not_found"
    DISK_SPACE = "disk_space"  # not enough free space to start
    DISK_FULL = "disk_full"  # the disk filled up mid-download: paused, data kept
    HASH_MISMATCH = "hash_mismatch"  # bad data deleted
    CHANGED = "changed"  # the hub's file differs from what the catalog pins
    OFFLINE = "offline"  # HF_HUB_OFFLINE is set
    ERROR = "error"


class DownloadError(RuntimeError):
    """A request the manager refuses; the message is one sentence for the user."""


@dataclass
class JobFile:
    name: str  # path inside the repo
    size: int | None = None  # expected bytes (catalog, else hub)
    sha256: str | None = None  # expected hash (catalog, else the hub's LFS sha256)
    done: int = 0  # bytes on disk
    verified: bool = False


@dataclass
class DownloadJob:
    id: str
    model_id: str
    name: str
    repo: str
    revision: str  # what was asked for ("main")
    files: list[JobFile]
    source: str = "catalog"  # "catalog" | "hub"
    commit: str | None = None  # the commit resolved on the first run; later runs fetch exactly it
    state: JobState = JobState.QUEUED
    message: str = "Waiting to start."
    error_kind: ErrorKind | None = None
    speed: float = 0.0  # bytes per second, smoothed; 0 when not running
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    installed_path: str | None = None  # the file to load, once done
    # What the catalog says the GGUF holds (its architecture block); the downloaded file must agree.
    expect_architecture: str | None = None
    expect_layers: int | None = None

    @property
    def bytes_done(self) -> int:
        return sum(f.done for f in self.files)

    @property
    def bytes_total(self) -> int | None:
        sizes = [f.size for f in self.files]
        return sum(s for s in sizes if s is not None) if all(s is not None for s in sizes) else None

    @property
    def percent(self) -> float | None:
        total = self.bytes_total
        if not total:
            return 100.0 if self.state == JobState.DONE else None
        return min(100.0, 100.0 * self.bytes_done / total)

    @property
    def eta_seconds(self) -> float | None:
        total = self.bytes_total
        if total is None or self.speed <= 0 or self.state != JobState.RUNNING:
            return None
        return max(0.0, (total - self.bytes_done) / self.speed)

    @property
    def finished(self) -> bool:
        return self.state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)

    def snapshot(self) -> DownloadJob:
        return dataclasses.replace(self, files=[dataclasses.replace(f) for f in self.files])

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["state"] = self.state.value
        d["error_kind"] = self.error_kind.value if self.error_kind else None
        d.pop("speed")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DownloadJob:
        d = dict(d)
        d["files"] = [JobFile(**f) for f in d["files"]]
        d["state"] = JobState(d["state"])
        d["error_kind"] = ErrorKind(d["error_kind"]) if d.get("error_kind") else None
        d.pop("speed", None)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


Listener = Callable[[DownloadJob], None]


class _Interrupted(Exception):
    """The job was asked to stop: reason "pause", "cancel" or "shutdown"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Failure(Exception):
    """The job stops in `state` (FAILED or PAUSED) with a message for the user."""

    def __init__(self, state: JobState, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.state = state
        self.kind = kind
        self.message = message


class _Transient(Exception):
    """A retryable problem of our own making (a short body, a bad range answer)."""


def format_bytes(n: float) -> str:
    """ "12.1 GB", "480 MB", "33 kB": sizes in progress lines (the CLI's too)."""
    if n >= 1e9:
        return f"{n / 1e9:.1f} GB"
    if n >= 1e6:
        return f"{n / 1e6:.0f} MB"
    return f"{n / 1e3:.0f} kB"


def hub_endpoint() -> str:
    """HF_ENDPOINT read now (huggingface_hub reads it once, at import), for mirrors and tests."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _no_telemetry() -> None:
    """huggingface_hub's user-agent code fetches `{endpoint}/api/agent-harnesses` (and caches it in
    ~/.cache/huggingface) unless telemetry is disabled; an offline-first app makes no request the
    user did not ask for. An explicit HF_HUB_DISABLE_TELEMETRY in the environment is respected."""
    if "HF_HUB_DISABLE_TELEMETRY" in os.environ:
        return
    from huggingface_hub import constants

    constants.HF_HUB_DISABLE_TELEMETRY = True


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP client's network-level exceptions (huggingface_hub 1.x/2.x use httpx or its fork)."""
    found: list[type[BaseException]] = []
    for module in ("httpx2", "httpx"):
        try:
            mod = __import__(module)
        except ImportError:
            continue
        found.append(mod.TransportError)
    return tuple(found)


# ---- hashing alongside the download ---------------------------------------------------------------


class _Hasher:
    """sha256 of a growing file, computed on its own thread so that hashing overlaps the network
    (hashlib releases the GIL). `prefix` bytes already on disk are read and hashed first."""

    def __init__(self, path: Path, prefix: int, state: Any | None = None) -> None:
        self.offset = prefix  # bytes accounted for once the queue drains
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=256)
        self._h = state if state is not None else hashlib.sha256()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(path, 0 if state is not None else prefix), name="hearth-hash", daemon=True
        )
        self._thread.start()

    def _run(self, path: Path, prefix: int) -> None:
        try:
            if prefix:
                with path.open("rb") as f:
                    left = prefix
                    while left:
                        block = f.read(min(_HASH_READ, left))
                        if not block:
                            raise OSError(errno.EIO, f"{path.name} is shorter than expected")
                        self._h.update(block)
                        left -= len(block)
            while (item := self._q.get()) is not None:
                self._h.update(item)
        except BaseException as exc:  # reported by finish(); keep draining so writers never block
            self._error = exc
            while self._q.get() is not None:
                pass

    def feed(self, data: bytes) -> None:
        self.offset += len(data)
        self._q.put(data)

    def finish(self) -> Any:
        """Wait until everything fed is hashed; return the hashlib object (reusable to continue)."""
        self._q.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._h


# ---- the manager ----------------------------------------------------------------------------------


class DownloadManager:
    """The download queue. Create one per process (a lock file stops a second process from writing
    the same partial files), subscribe listeners, call `start()`; `close()` on exit."""

    def __init__(
        self,
        *,
        root: Path | None = None,
        models_dir: Path | None = None,
        endpoint: str | None = None,
        token_provider: Callable[[], str | None] = secrets.get_hf_token,
        retries: int = 5,
        backoff: float = 1.0,
        backoff_max: float = 30.0,
        read_timeout: float = 20.0,
        disk_margin: int = DEFAULT_DISK_MARGIN,
        progress_interval: float = 0.1,
    ) -> None:
        self.root = root or paths.downloads_dir()
        self.models_dir = models_dir
        self._endpoint = endpoint
        self._token_provider = token_provider
        self.retries = retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.read_timeout = read_timeout
        self.disk_margin = disk_margin
        self.progress_interval = progress_interval

        self.root.mkdir(parents=True, exist_ok=True)
        self._lockfile = _acquire_lock(self.root / ".lock")
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._jobs: list[DownloadJob] = []
        self._listeners: list[Listener] = []
        self._interrupt = threading.Event()
        self._interrupt_reason = ""
        self._current: DownloadJob | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._hash_states: dict[tuple[str, str], tuple[int, Any]] = {}
        self._last_persist = 0.0
        self._load()

    # -- public API -----------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(job_snapshot)` on every change (from the worker or the calling thread)."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def start(self) -> None:
        """Start the worker thread: queued jobs (including those interrupted last time) run."""
        with self._lock:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._worker, name="hearth-downloads", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker; a running job is interrupted and continues on the next start."""
        if self._lockfile.closed:
            return
        with self._lock:
            self._stopping = True
            if self._current is not None:
                self._request_stop("shutdown")
            self._changed.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            self._thread = None
            self._persist(force=True)
        locks.release(self._lockfile)

    def __enter__(self) -> DownloadManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def jobs(self) -> list[DownloadJob]:
        with self._lock:
            return [j.snapshot() for j in self._jobs]

    def job(self, job_id: str) -> DownloadJob:
        with self._lock:
            return self._find(job_id).snapshot()

    def job_for_model(self, model_id: str) -> DownloadJob | None:
        """The unfinished (or latest) job for a model."""
        with self._lock:
            matches = [j for j in self._jobs if j.model_id == model_id]
            open_jobs = [j for j in matches if not j.finished]
            candidates = open_jobs or matches
            return candidates[-1].snapshot() if candidates else None

    def enqueue(self, entry: Any) -> DownloadJob:
        """Queue a catalog entry (catalog.CatalogEntry). An unfinished job for the same model is
        resumed instead of duplicated."""
        files = [JobFile(f.name, f.size_bytes, f.sha256) for f in entry.files]
        arch = getattr(entry, "architecture", None)
        return self._enqueue(
            entry.id,
            entry.name,
            entry.repo,
            entry.revision,
            files,
            "catalog",
            expect=(arch.name, arch.n_layers) if arch is not None else None,
        )

    def enqueue_files(
        self, model_id: str, name: str, repo: str, files: list[str], revision: str = "main"
    ) -> DownloadJob:
        """Queue any hub files (e.g. from a search) as one model; sizes and hashes come from the hub."""
        return self._enqueue(model_id, name, repo, revision, [JobFile(f) for f in files], "hub")

    def pause(self, job_id: str) -> DownloadJob:
        with self._lock:
            job = self._find(job_id)
            if job is self._current and job.state in (JobState.RUNNING, JobState.VERIFYING):
                self._request_stop("pause")
                self._update(job, message="Pausing…")
            elif job.state == JobState.QUEUED:
                self._set_state(job, JobState.PAUSED, f"Paused{self._at(job)}.")
            return job.snapshot()

    def resume(self, job_id: str) -> DownloadJob:
        """Queue a paused or failed job again; it continues from the bytes it has."""
        with self._lock:
            job = self._find(job_id)
            if job.state == JobState.CANCELLED:
                raise DownloadError("This download was cancelled; start it again from the library.")
            if job is self._current and self._interrupt_reason == "pause":
                self._interrupt_reason = ""  # taken back before the worker acted on it
                self._interrupt.clear()
                self._update(job, message="Continuing…")
            elif job.state in (JobState.PAUSED, JobState.FAILED):
                job.error_kind = None
                self._set_state(job, JobState.QUEUED, "Waiting to continue.")
                self._changed.notify_all()
            return job.snapshot()

    def cancel(self, job_id: str) -> DownloadJob:
        """Stop and delete the partial data."""
        with self._lock:
            job = self._find(job_id)
            if job is self._current and job.state in (JobState.RUNNING, JobState.VERIFYING):
                self._request_stop("cancel")
                self._update(job, message="Cancelling…")
            elif not job.finished or job.state == JobState.FAILED:
                self._discard_staging(job)
                self._set_state(job, JobState.CANCELLED, "Cancelled; the partial data was deleted.")
            return job.snapshot()

    def remove(self, job_id: str) -> None:
        """Forget a finished or cancelled job (the list in the Downloads panel)."""
        with self._lock:
            job = self._find(job_id)
            if job.state not in RESTING_STATES or job is self._current:
                raise DownloadError("Pause or cancel the download before removing it from the list.")
            if job.state != JobState.DONE:
                self._discard_staging(job)
            self._jobs.remove(job)
            self._persist(force=True)

    def wait(self, job_id: str, timeout: float | None = None) -> DownloadJob:
        """Block until the job is paused, done, failed or cancelled (for the CLI and tests)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                job = self._find(job_id)
                if job.state in RESTING_STATES and job is not self._current:
                    return job.snapshot()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return job.snapshot()
                self._changed.wait(left if left is not None else 1.0)

    def staging_dir(self, job_id: str) -> Path:
        return self.root / job_id

    # -- queue plumbing -------------------------------------------------------------------------

    def _enqueue(
        self,
        model_id: str,
        name: str,
        repo: str,
        revision: str,
        files: list[JobFile],
        source: str,
        expect: tuple[str, int] | None = None,
    ) -> DownloadJob:
        from app.core import catalog

        if not files:
            raise DownloadError("There is nothing to download: no files were given.")
        basenames = [Path(f.name).name for f in files]
        if len(set(basenames)) != len(basenames):
            raise DownloadError("Two of the files have the same name; they cannot share one model folder.")
        installed = catalog.find_installed(model_id, self._models_dir())
        if installed is not None and installed.problem is None:
            raise DownloadError(f"{name} is already installed.")
        with self._lock:
            # An earlier job for this model that can continue (queued, running, paused, failed with
            # its partial data) is reused: asking again means "carry on", never "start over".
            resumable = [
                j for j in self._jobs if j.model_id == model_id and j.state not in (JobState.DONE, JobState.CANCELLED)
            ]
            if resumable:
                existing = resumable[-1]
                if existing.state in (JobState.PAUSED, JobState.FAILED):
                    self.resume(existing.id)
                return existing.snapshot()
            job = DownloadJob(uuid.uuid4().hex[:12], model_id, name, repo, revision, files, source)
            if expect is not None:
                job.expect_architecture, job.expect_layers = expect
            self._jobs.append(job)
            self._notify(job)
            self._persist(force=True)
            self._changed.notify_all()
            return job.snapshot()

    def _worker(self) -> None:
        while True:
            with self._lock:
                job = next((j for j in self._jobs if j.state == JobState.QUEUED), None)
                while job is None and not self._stopping:
                    self._changed.wait()
                    job = next((j for j in self._jobs if j.state == JobState.QUEUED), None)
                if self._stopping:
                    return
                self._current = job
                self._interrupt.clear()
                self._interrupt_reason = ""
                assert job is not None
                # RUNNING before the lock is released, so a pause() from now on reaches the worker.
                self._set_state(job, JobState.RUNNING, "Contacting Hugging Face…")
            try:
                self._run(job)
            except Exception:  # a bug must not kill the queue; the job says what happened
                log.exception("download job %s crashed", job.id)
                with self._lock:
                    self._set_state(
                        job,
                        JobState.FAILED,
                        "The download stopped because of an internal error; "
                        "try again, and report it if it keeps happening.",
                        ErrorKind.ERROR,
                    )
            finally:
                with self._lock:
                    self._current = None
                    job.speed = 0.0
                    self._persist(force=True)
                    self._changed.notify_all()

    def _request_stop(self, reason: str) -> None:
        # A cancel outranks a pause, a user's pause outranks the shutdown's.
        rank = {"": 0, "shutdown": 1, "pause": 2, "cancel": 3}
        if rank[reason] > rank[self._interrupt_reason]:
            self._interrupt_reason = reason
        self._interrupt.set()

    def _check_interrupt(self) -> None:
        if self._interrupt.is_set():
            raise _Interrupted(self._interrupt_reason or "pause")

    def _find(self, job_id: str) -> DownloadJob:
        for j in self._jobs:
            if j.id == job_id:
                return j
        raise DownloadError(f"There is no download '{job_id}'.")

    def _models_dir(self) -> Path:
        return self.models_dir or paths.models_dir()

    def _at(self, job: DownloadJob) -> str:
        pct = job.percent
        return f" at {pct:.0f} %" if pct is not None and job.bytes_done else ""

    # -- state changes, listeners, persistence -------------------------------------------------

    def _set_state(self, job: DownloadJob, state: JobState, message: str, kind: ErrorKind | None = None) -> None:
        with self._lock:
            job.state = state
            job.message = secrets.redact(message)
            job.error_kind = kind
            if state != JobState.RUNNING:
                job.speed = 0.0
            job.updated_at = time.time()
            self._persist(force=True)
            self._notify(job)
            self._changed.notify_all()

    def _update(self, job: DownloadJob, *, message: str | None = None, force: bool = True) -> None:
        with self._lock:
            if message is not None:
                job.message = secrets.redact(message)
            job.updated_at = time.time()
            self._persist(force=force)
            self._notify(job)

    def _notify(self, job: DownloadJob) -> None:
        snap = job.snapshot()
        for listener in list(self._listeners):
            try:
                listener(snap)
            except Exception:  # a broken listener must not stop a download
                log.exception("download listener failed")

    def _persist(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_persist < _PERSIST_INTERVAL:
            return
        self._last_persist = now
        data = {"version": 1, "jobs": [j.to_dict() for j in self._jobs]}
        path = self.root / JOBS_FILE
        tmp = path.with_name(f".{JOBS_FILE}.tmp")
        try:
            tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:  # a full disk must not crash the worker; the .part files are the truth
            log.warning("cannot save the download list: %s", exc)

    def _load(self) -> None:
        path = self.root / JOBS_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            jobs = [DownloadJob.from_dict(d) for d in data.get("jobs", [])]
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("the download list %s is unreadable (%s); starting with an empty list", path, exc)
            path.replace(path.with_name(f"{JOBS_FILE}.damaged-{int(time.time())}"))
            return
        for job in jobs:
            if job.state in (JobState.RUNNING, JobState.VERIFYING):
                # The last process stopped mid-download (crash, kill, power loss): continue it.
                job.state = JobState.QUEUED
                job.message = "Continuing from where it stopped."
            for f in job.files:
                part = self._part_path(job, f)
                if not f.verified:
                    f.done = part.stat().st_size if part.exists() else 0
        self._jobs = jobs

    # -- running one job ------------------------------------------------------------------------

    def _run(self, job: DownloadJob) -> None:
        _no_telemetry()
        token = self._token_provider() or None
        try:
            self._with_retries(job, lambda: self._resolve(job, token), token)
            self._check_disk_space(job)
            for f in job.files:
                if f.verified:
                    continue
                self._with_retries(job, functools.partial(self._fetch, job, f, token), token)
                self._verify(job, f)
            self._check_interrupt()
            self._check_model(job)
            self._install(job)
        except _Interrupted as stop:
            self._stopped(job, stop.reason)
        except _Failure as failure:
            self._set_state(job, failure.state, failure.message, failure.kind)
        except OSError as exc:  # the staging or models folder cannot be written (full, read-only, ...)
            problem = self._classify(exc, job, token) or _Failure(
                JobState.FAILED, ErrorKind.ERROR, f"The download could not be written ({exc})."
            )
            self._set_state(job, problem.state, problem.message, problem.kind)

    def _stopped(self, job: DownloadJob, reason: str) -> None:
        if reason == "cancel":
            self._discard_staging(job)
            self._set_state(job, JobState.CANCELLED, "Cancelled; the partial data was deleted.")
        elif reason == "shutdown":
            self._set_state(
                job,
                JobState.QUEUED,
                f"Interrupted{self._at(job)} because Hearth closed; it continues when Hearth starts again.",
            )
        else:
            self._set_state(job, JobState.PAUSED, f"Paused{self._at(job)}; {format_bytes(job.bytes_done)} kept.")

    def _with_retries(self, job: DownloadJob, step: Callable[[], None], token: str | None) -> None:
        """Run `step`, retrying network trouble with exponential backoff; attempts start over
        whenever data arrived, so a flaky but working connection never gives up. When the hub
        cannot be reached at all (no network, no DNS) the job waits, retrying every `backoff_max`
        seconds at most, and carries on by itself once the connection is back."""
        attempt = 0
        offline = False
        while True:
            self._check_interrupt()
            before = job.bytes_done
            try:
                step()
                if offline:
                    log.info("download %s: Hugging Face can be reached again", job.id)
                return
            except (_Interrupted, _Failure):
                raise
            except Exception as exc:
                failure = self._classify(exc, job, token)
                if failure is not None:
                    raise failure from None
                if job.bytes_done > before:
                    attempt = 0
                attempt += 1
                if _unreachable(exc):
                    if not offline:
                        log.info("download %s: Hugging Face cannot be reached (%s)", job.id, _describe(exc))
                    offline = True
                    delay = min(self.backoff_max, self.backoff * 2 ** min(attempt - 1, 16))
                    self._update(
                        job,
                        message="Hugging Face cannot be reached (is this computer offline?); the download "
                        f"continues by itself when the connection is back (next try in {delay:.0f} s).",
                    )
                    if self._interrupt.wait(delay):
                        self._check_interrupt()
                    continue
                if offline:
                    offline = False
                    self._update(job, message="Connected again; continuing.")
                reason = secrets.redact(_network_reason(exc), token)
                log.info("download %s: %s (%s)", job.id, reason, secrets.redact(_describe(exc), token))
                if attempt > self.retries:
                    raise _Failure(
                        JobState.PAUSED,
                        ErrorKind.NETWORK,
                        f"The download keeps failing ({reason}); it is paused with "
                        f"{format_bytes(job.bytes_done)} kept. Check the connection and resume.",
                    ) from None
                delay = min(self.backoff_max, self.backoff * 2 ** (attempt - 1))
                self._update(
                    job,
                    message=f"Connection problem ({reason}); retrying in {delay:.0f} s "
                    f"(attempt {attempt} of {self.retries}).",
                )
                if self._interrupt.wait(delay):
                    self._check_interrupt()

    def _classify(self, exc: BaseException, job: DownloadJob, token: str | None) -> _Failure | None:
        """A _Failure for problems retrying cannot fix; None for transient ones."""
        from huggingface_hub import errors as hf

        page = f"{self._endpoint_url()}/{job.repo}"
        if isinstance(exc, hf.OfflineModeIsEnabled):
            return _Failure(
                JobState.FAILED,
                ErrorKind.OFFLINE,
                "Hugging Face offline mode is on (HF_HUB_OFFLINE); turn it off to download models.",
            )
        if isinstance(exc, hf.GatedRepoError) or (
            isinstance(exc, hf.HfHubHTTPError)
            and _status(exc) in (401, 403)
            and not isinstance(exc, hf.RepositoryNotFoundError)
        ):
            return _Failure(JobState.FAILED, ErrorKind.GATED, _gated_message(job.name, page, token))
        if isinstance(exc, hf.RepositoryNotFoundError):
            hint = (
                "your token cannot read it"
                if token
                else "if it is private or gated, add a Hugging Face token in Settings"
            )
            return _Failure(
                JobState.FAILED,
                ErrorKind.NOT_FOUND,
                f"The repository {job.repo} was not found on Hugging Face ({hint}).",
            )
        if isinstance(exc, hf.RevisionNotFoundError):
            return _Failure(
                JobState.FAILED,
                ErrorKind.NOT_FOUND,
                f"The revision {job.commit or job.revision} of {job.repo} no longer exists on "
                "Hugging Face; cancel this download and start it again.",
            )
        if isinstance(exc, hf.RemoteEntryNotFoundError) or (isinstance(exc, hf.HfHubHTTPError) and _status(exc) == 404):
            return _Failure(
                JobState.FAILED,
                ErrorKind.NOT_FOUND,
                f"A file of {job.name} was not found in {job.repo} on Hugging Face.",
            )
        if isinstance(exc, hf.HfHubHTTPError):
            status = _status(exc)
            if status is not None and (status >= 500 or status in (408, 429)):
                return None
            return _Failure(JobState.FAILED, ErrorKind.ERROR, f"Hugging Face refused the download (HTTP {status}).")
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
            return _Failure(
                JobState.PAUSED,
                ErrorKind.DISK_FULL,
                f"The disk is full; the download is paused with {format_bytes(job.bytes_done)} kept. "
                "Free up some space and resume.",
            )
        if isinstance(exc, (_Transient, *_transport_errors())):
            return None
        if isinstance(exc, OSError):
            return _Failure(
                JobState.FAILED, ErrorKind.ERROR, f"The download could not be written ({exc.strerror or exc})."
            )
        return _Failure(JobState.FAILED, ErrorKind.ERROR, f"The download failed: {_describe(exc)}.")

    def _endpoint_url(self) -> str:
        return (self._endpoint or hub_endpoint()).rstrip("/")

    def _resolve(self, job: DownloadJob, token: str | None) -> None:
        """Sizes, LFS sha256 and the commit from the hub; the catalog's values must agree."""
        from huggingface_hub import HfApi

        api = HfApi(endpoint=self._endpoint_url(), library_name=LIBRARY_NAME)
        netlog.record_url(self._endpoint_url(), "download")
        info = api.model_info(
            job.repo,
            revision=job.commit or job.revision,
            files_metadata=True,
            token=token or False,
            timeout=self.read_timeout,
        )
        if getattr(info, "gated", False) and not token:
            raise _Failure(
                JobState.FAILED, ErrorKind.GATED, _gated_message(job.name, f"{self._endpoint_url()}/{job.repo}", None)
            )
        siblings = {s.rfilename: s for s in (info.siblings or [])}
        # The catalog is what the user chose: a curated model is installed only if the hub's file is
        # the one the catalog describes (its size, its sha256 where the catalog pins one), on a
        # branch as much as on a pinned commit. Values the catalog leaves open come from the hub.
        for f in job.files:
            s = siblings.get(f.name)
            if s is None:
                raise _Failure(JobState.FAILED, ErrorKind.NOT_FOUND, f"{f.name} is not in {job.repo} on Hugging Face.")
            hub_size = s.lfs.size if s.lfs else s.size
            hub_sha = s.lfs.sha256 if s.lfs else None
            if job.source == "catalog":
                if f.size is not None and hub_size is not None and hub_size != f.size:
                    raise _Failure(
                        JobState.FAILED,
                        ErrorKind.CHANGED,
                        f"Hugging Face offers {f.name} with {hub_size:,} bytes, but Hearth's catalog expects "
                        f"{f.size:,}: it is not the file the catalog describes, so Hearth did not download it. "
                        "Update Hearth to get a catalog that knows the new file.",
                    )
                if f.sha256 and hub_sha and hub_sha != f.sha256:
                    raise _Failure(
                        JobState.FAILED,
                        ErrorKind.CHANGED,
                        f"{f.name} on Hugging Face has another checksum (sha256) than the one Hearth's catalog "
                        "pins, so Hearth did not download it. Update Hearth to get a catalog that knows the new file.",
                    )
            f.size = f.size if f.size is not None else hub_size
            f.sha256 = f.sha256 or hub_sha
        job.commit = info.sha or job.commit
        self._update(job, message="Starting the download…")

    def _check_disk_space(self, job: DownloadJob) -> None:
        staging = self.staging_dir(job.id)
        staging.mkdir(parents=True, exist_ok=True)
        remaining = sum(max((f.size or 0) - f.done, 0) for f in job.files if not f.verified)
        free = shutil.disk_usage(staging).free
        need = remaining + self.disk_margin
        if free < need:
            raise _Failure(
                JobState.FAILED,
                ErrorKind.DISK_SPACE,
                f"Not enough disk space: {job.name} needs {format_bytes(need)} more (with a "
                f"{format_bytes(self.disk_margin)} safety margin), but only {format_bytes(free)} is free. "
                "Free up space and try again.",
            )
        models = self._models_dir()
        models.mkdir(parents=True, exist_ok=True)
        if os.stat(models).st_dev != os.stat(staging).st_dev:
            # The move into the models folder becomes a copy: that disk needs the whole model.
            total = sum(f.size or 0 for f in job.files) + self.disk_margin
            free_models = shutil.disk_usage(models).free
            if free_models < total:
                raise _Failure(
                    JobState.FAILED,
                    ErrorKind.DISK_SPACE,
                    f"Not enough disk space in the models folder: {job.name} needs {format_bytes(total)}, "
                    f"but only {format_bytes(free_models)} is free there.",
                )

    def _part_path(self, job: DownloadJob, f: JobFile) -> Path:
        return self.staging_dir(job.id) / (f.name.replace("/", "__") + ".part")

    def _fetch(self, job: DownloadJob, f: JobFile, token: str | None) -> None:
        """Append the missing bytes of one file to its .part, with a Range request."""
        from huggingface_hub import hf_hub_url
        from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_stream_backoff

        part = self._part_path(job, f)
        part.parent.mkdir(parents=True, exist_ok=True)
        have = part.stat().st_size if part.exists() else 0
        if f.size is not None and have > f.size:  # cannot be ours: start this file over
            part.unlink()
            self._hash_states.pop((job.id, f.name), None)
            have = 0
        f.done = have
        if f.size is not None and have == f.size:
            return
        url = hf_hub_url(job.repo, f.name, revision=job.commit or job.revision, endpoint=self._endpoint_url())
        headers = build_hf_headers(token=token or False, library_name=LIBRARY_NAME)
        headers["Accept-Encoding"] = "identity"  # byte ranges must count file bytes, not gzip bytes
        if have:
            headers["Range"] = f"bytes={have}-"
        _tune_socket_reads()
        netlog.record_url(url, "download")
        # No retries inside: ours (_with_retries) can be interrupted by a pause and resume mid-file.
        with http_stream_backoff(
            "GET", url, headers=headers, timeout=self.read_timeout, retry_on_exceptions=(), retry_on_status_codes=()
        ) as response:
            netlog.record_url(str(response.url), "download")  # the host a redirect led to (the hub's file CDN)
            if response.status_code == 416 and have:
                part.unlink()  # the server says our partial data is not a prefix of its file
                self._hash_states.pop((job.id, f.name), None)
                raise _Transient("the server rejected the resume point; starting this file over")
            hf_raise_for_status(response)
            if have and response.status_code == 200:
                have = 0  # the server ignored the Range header: take the whole body from the start
            elif response.status_code == 206:
                start, total = _content_range(response.headers.get("Content-Range", ""))
                if start != have:
                    raise _Transient(f"the server resumed at byte {start}, not {have}")
                self._check_size(job, f, total)
            if response.status_code == 200:
                length = response.headers.get("Content-Length")
                self._check_size(job, f, int(length) if length and length.isdigit() else None)
            identity = response.headers.get("Content-Encoding", "identity").lower() == "identity"
            # iter_raw skips httpx's decoder layer (measured ~30 % faster); only valid unencoded.
            self._receive(job, f, part, have, response.iter_raw() if identity else response.iter_bytes())
        if f.size is not None and f.done < f.size:
            raise _Transient(f"the connection closed after {format_bytes(f.done)} of {format_bytes(f.size)}")

    def _check_size(self, job: DownloadJob, f: JobFile, total: int | None) -> None:
        if total is None:
            return
        if f.size is None:
            f.size = total
        elif total != f.size:
            raise _Failure(
                JobState.FAILED,
                ErrorKind.CHANGED,
                f"Hugging Face serves {f.name} with {total:,} bytes, not the {f.size:,} expected, so Hearth "
                "stopped: the file changed upstream or is not the one that was chosen.",
            )

    def _receive(self, job: DownloadJob, f: JobFile, part: Path, have: int, chunks: Iterator[bytes]) -> None:
        key = (job.id, f.name)
        saved = self._hash_states.pop(key, None)
        state = saved[1] if saved is not None and saved[0] == have else None
        hasher = _Hasher(part, have, state)
        window_start, window_bytes = time.monotonic(), 0
        last_note = 0.0
        # Unbuffered: what write() returns is on disk (in the page cache), so the .part size is
        # always a true prefix, even after kill -9 or a full disk mid-chunk.
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        try:
            os.ftruncate(fd, have)
            os.lseek(fd, have, os.SEEK_SET)
            for chunk in chunks:
                self._check_interrupt()
                if f.size is not None and have + len(chunk) > f.size:
                    raise _Transient("the server sent more data than the file holds")
                view, off = memoryview(chunk), 0
                while off < len(chunk):
                    n = _write(fd, view[off:])  # may write less (a disk filling up): hash what landed
                    hasher.feed(chunk if n == len(chunk) else chunk[off : off + n])
                    off += n
                    have += n
                    f.done = have
                now = time.monotonic()
                window_bytes += len(chunk)
                if now - window_start >= 0.5:
                    rate = window_bytes / (now - window_start)
                    job.speed = rate if job.speed <= 0 else 0.7 * job.speed + 0.3 * rate
                    window_start, window_bytes = now, 0
                if now - last_note >= self.progress_interval:
                    last_note = now
                    self._progress(job)
        finally:
            os.close(fd)
            try:
                h = hasher.finish()
                self._hash_states[key] = (hasher.offset, h)
            except OSError:
                self._hash_states.pop(key, None)
        self._progress(job)

    def _progress(self, job: DownloadJob) -> None:
        pct = job.percent
        eta = job.eta_seconds
        text = f"Downloading: {format_bytes(job.bytes_done)}"
        if job.bytes_total:
            text += f" of {format_bytes(job.bytes_total)} ({pct:.0f} %)"
        if job.speed > 0:
            text += f", {format_bytes(job.speed)}/s"
        if eta is not None:
            text += f", {format_duration(eta)} left"
        self._update(job, message=text + ".", force=False)

    def _verify(self, job: DownloadJob, f: JobFile) -> None:
        part = self._part_path(job, f)
        size = part.stat().st_size if part.exists() else 0
        self._set_state(job, JobState.VERIFYING, f"Checking {Path(f.name).name}…")
        try:
            if f.size is not None and size != f.size:
                raise _Failure(
                    JobState.FAILED,
                    ErrorKind.HASH_MISMATCH,
                    f"{Path(f.name).name} has {size:,} bytes instead of {f.size:,}",
                )
            if f.sha256:
                saved = self._hash_states.pop((job.id, f.name), None)
                digest = saved[1].hexdigest() if saved is not None and saved[0] == size else self._hash_file(part)
                if digest != f.sha256:
                    raise _Failure(
                        JobState.FAILED,
                        ErrorKind.HASH_MISMATCH,
                        f"{Path(f.name).name} does not match its published checksum (sha256)",
                    )
        except _Failure as bad:
            part.unlink(missing_ok=True)
            f.done = 0
            raise _Failure(
                JobState.FAILED,
                ErrorKind.HASH_MISMATCH,
                f"{bad.message}, so the damaged data ({format_bytes(size)}) was deleted. Try the download again.",
            ) from None
        f.verified = True
        self._set_state(job, JobState.RUNNING, f"{Path(f.name).name} verified.")

    def _hash_file(self, path: Path) -> str:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            while block := fh.read(_HASH_READ):
                self._check_interrupt()
                h.update(block)
        return h.hexdigest()

    def _install(self, job: DownloadJob) -> None:
        """Move the verified files into the models folder, then (last) write the manifest entry."""
        from app.core import catalog

        dest_dir = self._models_dir() / job.model_id
        dest_dir.mkdir(parents=True, exist_ok=True)
        placed: list[Path] = []
        for f in job.files:
            src = self._ready_path(job, f)
            if not src.exists():
                src = self._part_path(job, f)
            dest = dest_dir / Path(f.name).name
            if not src.exists() and dest.is_file() and dest.stat().st_size == f.size:
                placed.append(dest)  # moved by a run that stopped before writing the manifest
                continue
            _move(src, dest)
            placed.append(dest)
        catalog.record_install(
            job.model_id,
            job.name,
            placed,
            source=job.source,
            repo=job.repo,
            commit=job.commit,
            sha256={f.name: f.sha256 for f in job.files if f.sha256},
            models_dir=self._models_dir(),
        )
        shutil.rmtree(self.staging_dir(job.id), ignore_errors=True)
        job.installed_path = str(placed[0])
        self._set_state(job, JobState.DONE, f"{job.name} is installed and verified.")

    def _ready_path(self, job: DownloadJob, f: JobFile) -> Path:
        """Where a verified file waits under its own name, so that the validator can read a split model."""
        return self.staging_dir(job.id) / "ready" / Path(f.name).name

    def _check_model(self, job: DownloadJob) -> None:
        """The verified files must be a model llama.cpp can load, and the one the catalog describes
        (its architecture and layer count). Otherwise everything fetched is deleted and nothing is
        installed: the checksum only proves the bytes are the hub's, not that they are what was chosen."""
        from app.core.gguf_file import GGUFError, inspect_gguf

        ready = []
        for f in job.files:
            target = self._ready_path(job, f)
            part = self._part_path(job, f)
            if part.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(part, target)
            ready.append(target)
        self._set_state(job, JobState.VERIFYING, f"Checking that {job.name} is a usable model…")
        problem = None
        try:
            info = inspect_gguf(ready[0])
        except GGUFError as exc:
            problem = f"The downloaded file is not a model Hearth can use ({exc})"
        else:
            if job.expect_architecture and info.architecture != job.expect_architecture:
                problem = (
                    f"The downloaded file holds a '{info.architecture}' model, but {job.name} is a "
                    f"'{job.expect_architecture}' model"
                )
            elif job.expect_layers and info.n_layers != job.expect_layers:
                problem = f"The downloaded file has {info.n_layers:,} layers, but {job.name} has {job.expect_layers:,}"
        if problem is not None:
            size = sum(p.stat().st_size for p in ready if p.exists())
            self._discard_staging(job)
            raise _Failure(
                JobState.FAILED,
                ErrorKind.CHANGED,
                f"{problem}; it was not installed and its {format_bytes(size)} were deleted.",
            )

    def _discard_staging(self, job: DownloadJob) -> None:
        shutil.rmtree(self.staging_dir(job.id), ignore_errors=True)
        for f in job.files:
            self._hash_states.pop((job.id, f.name), None)
            if not f.verified or job.state != JobState.DONE:
                f.done = 0
                f.verified = False


# ---- searching the hub (only when the user searches) ----------------------------------------------


@dataclass(frozen=True)
class HubRepo:
    id: str
    downloads: int
    likes: int
    gated: bool


@dataclass(frozen=True)
class HubModel:
    """One model of a hub repo: a .gguf file, or all parts of a split one (downloaded as one job)."""

    repo: str
    name: str  # the file, or the split model's name without the part suffix
    files: tuple[str, ...]
    size_bytes: int | None

    @property
    def model_id(self) -> str:
        """A stable id for the installed model (a folder name)."""
        slug = re.sub(r"[^a-z0-9._-]+", "-", f"{self.repo}-{self.name}".lower()).strip("-.")
        return "hub-" + slug.removesuffix(".gguf")[:96]


def search_gguf_repos(
    query: str, *, limit: int = 30, endpoint: str | None = None, token: str | None = None
) -> list[HubRepo]:
    """GGUF repositories matching `query`, most downloaded first. Raises DownloadError offline.

    One request, no retries: HfApi.list_models retries a refused connection for ~20 s, too long
    for a search box (the same `GET /api/models` it makes, through the library's session)."""
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    _no_telemetry()
    params: dict[str, str | int] = {
        "search": query,
        "filter": "gguf",
        "sort": "downloads",
        "direction": -1,
        "limit": limit,
    }
    netlog.record_url(endpoint or hub_endpoint(), "hub search")
    try:
        response = get_session().get(
            f"{endpoint or hub_endpoint()}/api/models",
            params=params,
            timeout=15,
            headers=build_hf_headers(token=token or False, library_name=LIBRARY_NAME),
        )
        hf_raise_for_status(response)
        found = response.json()
    except Exception as exc:
        raise DownloadError(_search_error(exc)) from None
    return [
        HubRepo(
            str(m.get("id") or m.get("modelId")),
            int(m.get("downloads") or 0),
            int(m.get("likes") or 0),
            bool(m.get("gated")),
        )
        for m in found
        if isinstance(m, dict)
    ]


def repo_gguf_models(
    repo: str, *, revision: str = "main", endpoint: str | None = None, token: str | None = None
) -> list[HubModel]:
    """The chat models in a repo: its .gguf files with sizes, split parts grouped, projectors left out."""
    from huggingface_hub import HfApi

    _no_telemetry()
    api = HfApi(endpoint=(endpoint or hub_endpoint()), library_name=LIBRARY_NAME)
    netlog.record_url(endpoint or hub_endpoint(), "hub search")
    try:
        info = api.model_info(repo, revision=revision, files_metadata=True, token=token or False)
    except Exception as exc:
        raise DownloadError(_search_error(exc)) from None
    groups: dict[str, list[Any]] = {}
    for s in info.siblings or []:
        base = s.rfilename.rsplit("/", 1)[-1]
        if not base.lower().endswith(".gguf") or base.lower().startswith("mmproj"):
            continue
        m = _SPLIT_NAME.match(s.rfilename)
        key = f"{m.group('prefix')}.gguf" if m else s.rfilename
        groups.setdefault(key, []).append(s)
    models = []
    for key, parts in sorted(groups.items()):
        parts.sort(key=lambda s: s.rfilename)
        sizes = [(s.lfs.size if s.lfs else s.size) for s in parts]
        total = sum(sizes) if all(x is not None for x in sizes) else None
        models.append(HubModel(repo, key.rsplit("/", 1)[-1], tuple(s.rfilename for s in parts), total))
    return models


def _search_error(exc: BaseException) -> str:
    from huggingface_hub import errors as hf

    if isinstance(exc, hf.OfflineModeIsEnabled):
        return "Hugging Face offline mode is on (HF_HUB_OFFLINE); turn it off to search."
    if isinstance(exc, hf.RepositoryNotFoundError):
        return "That repository was not found on Hugging Face (or it is private)."
    if isinstance(exc, _transport_errors()):
        return "Hugging Face cannot be reached; check the internet connection."
    return f"Searching Hugging Face failed ({_describe(exc)})."


# ---- helpers --------------------------------------------------------------------------------------


def _gated_message(name: str, page: str, token: str | None) -> str:
    if token:
        return (
            f"Your Hugging Face token cannot download {name} yet: open {page}, accept the model's licence "
            "with the same account, then try again."
        )
    return (
        f"{name} requires accepting its licence on Hugging Face and a token: accept it at {page}, "
        "then add your Hugging Face token in Settings and try again."
    )


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _describe(exc: BaseException) -> str:
    status = _status(exc)
    if status is not None:
        return f"HTTP {status}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text}"[:160] if text else name


def _unreachable(exc: BaseException) -> bool:
    """The hub cannot be reached at all: no route, no DNS, nothing listening (not a cut transfer)."""
    for module in ("httpx2", "httpx"):
        try:
            mod = __import__(module)
        except ImportError:
            continue
        if isinstance(exc, (mod.ConnectError, mod.ConnectTimeout)):
            return True
    return False


def _network_reason(exc: BaseException) -> str:
    """What went wrong with the connection, in words (the exception's text goes to the log)."""
    status = _status(exc)
    if status is not None:
        return f"Hugging Face answered HTTP {status}"
    if isinstance(exc, _Transient):
        return str(exc)
    name = type(exc).__name__
    if "Timeout" in name:
        return "the connection timed out"
    if name in ("RemoteProtocolError", "ReadError", "WriteError", "ProtocolError", "NetworkError"):
        return "the connection was cut off"
    return _describe(exc)


def _content_range(value: str) -> tuple[int, int | None]:
    """'bytes 100-199/1000' -> (100, 1000)."""
    try:
        unit, _, rest = value.partition(" ")
        span, _, total = rest.partition("/")
        start = int(span.split("-")[0])
        return start, (int(total) if total.isdigit() else None)
    except ValueError:
        raise _Transient(f"the server sent an unreadable Content-Range ({value!r})") from None


def format_duration(seconds: float) -> str:
    """ "2 min 05 s", "1 h 03 min": an ETA for progress lines (the CLI's too)."""
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


_READ_SIZE = 1024 * 1024


def _tune_socket_reads() -> None:
    """httpcore (and httpx2's fork of it) reads the socket 64 KiB at a time and parses each read in
    Python; on a fast link that per-read cost, not the network, limits a download (measured on the
    local stand-in hub: 280 MB/s with 64 KiB reads, 650 MB/s with 1 MiB). A larger read size only
    lets one recv() return more of what has already arrived, so other requests are unaffected."""
    for module in ("httpcore2._sync.http11", "httpcore._sync.http11"):
        try:
            mod = __import__(module, fromlist=["HTTP11Connection"])
        except ImportError:
            continue
        conn = getattr(mod, "HTTP11Connection", None)
        if conn is not None and getattr(conn, "READ_NUM_BYTES", _READ_SIZE) < _READ_SIZE:
            conn.READ_NUM_BYTES = _READ_SIZE


def _move(src: Path, dest: Path) -> None:
    """Atomic rename; across file systems a copy to a temporary name, then a rename."""
    try:
        os.replace(src, dest)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    tmp = dest.with_name(dest.name + ".installing")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    src.unlink()


def _acquire_lock(path: Path) -> IO[str]:
    """An exclusive lock on the downloads folder for this process's lifetime."""
    fh = locks.try_lock(path)
    if fh is None:
        raise DownloadError("Another Hearth window or command is managing downloads; close it first.")
    return fh
