"""A stand-in for the Hugging Face hub on 127.0.0.1, for tests and benchmarks (point HF_ENDPOINT at
`HubServer.url`). It implements what huggingface_hub 2.x calls to find and fetch model files:

* GET /api/models/{repo} and /api/models/{repo}/revision/{rev}: JSON with `sha` and `siblings`
  (`rfilename`, `size`, `blobId`, `lfs` {`size`, `sha256`, `pointerSize`}), `gated`, `private`.
* GET /api/models?search=...: a list of repos (id, siblings names), for hub search.
* HEAD / GET /{repo}/resolve/{rev}/{file}: `X-Repo-Commit`, `ETag`, `X-Linked-Etag`,
  `X-Linked-Size`, `Accept-Ranges: bytes`, 206 + `Content-Range` for Range requests, 416 past the
  end; with `redirect=True` a 302 to a second listener (another origin, like the hub's CDN) that
  serves the bytes, as the real hub does for LFS files.
* The hub's error headers: 401 `X-Error-Code: RepoNotFound` / `GatedRepo`, 403 `GatedRepo` for a
  token without access, 404 `EntryNotFound` / `RevisionNotFound`.

Fault injection per file (`inject`): a status code (e.g. 500 then success), a connection dropped at a
byte offset, a slow trickle from an offset, a stall, wrong bytes (same length), a server that ignores
Range. Every served body is bounded by the file's size and a deadline, and `stop()` ends trickles,
so no test can hang on the server. It binds 127.0.0.1 only.

Files are bytes in memory or paths on disk (served with sendfile, fast enough for benchmarks).
`log` records every request (method, path, Range, status, body bytes sent) so tests can assert
what was re-downloaded.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

BODY_DEADLINE_S = 300.0  # no single response may take longer than this
_CHUNK = 64 * 1024


@dataclass
class Fault:
    """What goes wrong on the next GET(s) of a file's content.

    kind: "status" (answer `status` with `headers`), "drop" (close the connection once `at` bytes of
    the file have been sent), "trickle" (from byte `at`, send `rate` bytes/s), "stall" (at byte `at`,
    send nothing for `seconds`), "wrong_bytes" (flip the byte at `at`), "ignore_range" (answer 200
    with the whole file even to a Range request). `times` GETs are affected (-1: all of them).
    """

    kind: str
    at: int = 0
    status: int = 500
    rate: int = 1_000_000
    seconds: float = 0.0
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class HubFile:
    name: str
    data: bytes | None = None
    path: Path | None = None
    lfs: bool = True
    size: int = 0
    sha256: str = ""
    # What the hub's metadata claims, when it lies (a re-upload, a hostile mirror): None tells the truth.
    claimed_size: int | None = None
    claimed_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.path is not None:
            self.size = self.path.stat().st_size
            if not self.sha256:
                h = hashlib.sha256()
                with self.path.open("rb") as f:
                    while block := f.read(8 << 20):
                        h.update(block)
                self.sha256 = h.hexdigest()
        else:
            assert self.data is not None
            self.size = len(self.data)
            self.sha256 = self.sha256 or hashlib.sha256(self.data).hexdigest()

    def read(self, start: int, end: int) -> bytes:
        if self.data is not None:
            return self.data[start:end]
        assert self.path is not None
        with self.path.open("rb") as f:
            f.seek(start)
            return f.read(end - start)


@dataclass
class Repo:
    id: str
    files: dict[str, HubFile]
    sha: str
    gated: bool = False
    tokens: frozenset[str] = frozenset()  # tokens that may download a gated repo


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    status: int
    sent: int  # body bytes written to the socket
    authorized: bool
    server: str  # "hub" or "cdn"


class HubServer:
    def __init__(self, *, redirect: bool = False, port: int = 0) -> None:
        self.repos: dict[str, Repo] = {}
        self.redirect = redirect
        self.log: list[Request] = []
        self._faults: dict[tuple[str, str], list[Fault]] = {}
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._in_flight = 0  # requests being answered: logged when their handler is done
        self.stopping = threading.Event()
        self._hub = _Server(("127.0.0.1", port), _Handler, self, "hub")
        self._cdn = _Server(("127.0.0.1", 0), _Handler, self, "cdn")
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def start(self) -> HubServer:
        for srv in (self._hub, self._cdn):
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self.stopping.set()
        for srv in (self._hub, self._cdn):
            srv.shutdown()
            srv.server_close()
        for t in self._threads:
            t.join(5)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- content --------------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes | Path],
        *,
        gated: bool = False,
        tokens: tuple[str, ...] = (),
        sha: str | None = None,
    ) -> Repo:
        hub_files = {}
        for name, content in files.items():
            if isinstance(content, Path):
                hub_files[name] = HubFile(name, path=content, lfs=name.endswith(".gguf"))
            else:
                hub_files[name] = HubFile(name, data=content, lfs=name.endswith(".gguf"))
        commit = sha or hashlib.sha1(repo_id.encode()).hexdigest()
        repo = Repo(repo_id, hub_files, commit, gated, frozenset(tokens))
        self.repos[repo_id] = repo
        return repo

    def inject(self, repo_id: str, name: str, fault: Fault) -> None:
        with self._lock:
            self._faults.setdefault((repo_id, name), []).append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, repo_id: str, name: str) -> Fault | None:
        with self._lock:
            faults = self._faults.get((repo_id, name))
            if not faults:
                return None
            fault = faults[0]
            if fault.times > 0:
                fault.times -= 1
                if fault.times == 0:
                    faults.pop(0)
            return fault

    # -- what happened --------------------------------------------------------------------------

    def begin(self) -> None:
        with self._lock:
            self._in_flight += 1

    def record(self, req: Request) -> None:
        with self._lock:
            self.log.append(req)
            self._in_flight -= 1
            self._settled.notify_all()

    def requests(self, method: str | None = None, contains: str = "", settle_s: float = 0.5) -> list[Request]:
        """The logged requests. A client can have read a whole answer before its handler logs it (seen
        in CI: a search's result back, its request not yet in the log), so this first waits up to
        `settle_s` for the requests being answered to finish (a download still streaming does not)."""
        with self._lock:
            self._settled.wait_for(lambda: self._in_flight == 0, timeout=settle_s)
            return [r for r in self.log if (method is None or r.method == method) and contains in r.path]

    def body_bytes(self, name: str = "") -> int:
        """Bytes of file content sent (GETs of resolve or CDN URLs whose path mentions `name`)."""
        return sum(r.sent for r in self.requests("GET", name) if "/api/" not in r.path)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], handler: type, hub: HubServer, role: str) -> None:
        self.hub = hub
        self.role = role
        super().__init__(addr, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm on, the client's delayed
    # ACK then holds every small response for ~40 ms (measured), which real hubs do not do.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the test log is enough
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError):
            pass  # the client went away between requests (a killed process, a dropped job)

    # -- dispatch -------------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def _dispatch(self, head: bool) -> None:
        hub = self.server.hub
        self._sent = 0
        self._status = 0
        hub.begin()
        try:
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            if self.server.role == "cdn":
                query = parse_qs(parts.query)
                self._serve_cdn(query.get("repo", [""])[0], query.get("file", [""])[0], head)
            elif path.startswith("/api/models/"):
                self._api_model(path.removeprefix("/api/models/"))
            elif path == "/api/models":
                self._api_search(parse_qs(parts.query).get("search", [""])[0])
            elif "/resolve/" in path:
                repo_id, _, rest = path.lstrip("/").partition("/resolve/")
                rev, _, name = rest.partition("/")
                self._resolve(repo_id, rev, name, head)
            else:
                self._error(404, "Not Found")
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        finally:
            hub.record(
                Request(
                    "HEAD" if head else "GET",
                    self.path,
                    self.headers.get("Range"),
                    self._status,
                    self._sent,
                    bool(self.headers.get("Authorization")),
                    self.server.role,
                )
            )

    # -- API ------------------------------------------------------------------------------------

    def _api_model(self, rest: str) -> None:
        hub = self.server.hub
        repo_id, _, rev = rest.partition("/revision/")
        repo = hub.repos.get(repo_id)
        if repo is None:
            self._error(401, "Repository not found", code="RepoNotFound")
            return
        if rev and rev not in ("main", repo.sha):
            self._error(404, f"Invalid rev id: {rev}", code="RevisionNotFound")
            return
        siblings = []
        for f in repo.files.values():
            size = f.size if f.claimed_size is None else f.claimed_size
            sha = f.claimed_sha256 or f.sha256
            entry: dict[str, Any] = {
                "rfilename": f.name,
                "size": size,
                "blobId": hashlib.sha1(sha.encode()).hexdigest(),
            }
            if f.lfs:
                entry["lfs"] = {"size": size, "sha256": sha, "pointerSize": 134}
            siblings.append(entry)
        body = {
            "_id": repo.sha[:24],
            "id": repo.id,
            "modelId": repo.id,
            "sha": repo.sha,
            "private": False,
            "gated": "manual" if repo.gated else False,
            "disabled": False,
            "tags": ["gguf"],
            "siblings": siblings,
        }
        self._json(body)

    def _api_search(self, query: str) -> None:
        hub = self.server.hub
        found = [
            {
                "id": r.id,
                "modelId": r.id,
                "sha": r.sha,
                "gated": r.gated,
                "tags": ["gguf"],
                "siblings": [{"rfilename": n} for n in r.files],
            }
            for r in hub.repos.values()
            if query.lower() in r.id.lower()
        ]
        self._json(found)

    # -- files ----------------------------------------------------------------------------------

    def _authorize(self, repo: Repo) -> bool:
        if not repo.gated:
            return True
        auth = self.headers.get("Authorization", "")
        if not auth:
            self._error(
                401,
                "Access to model is restricted. You must have access to it and be authenticated.",
                code="GatedRepo",
                commit=repo.sha,
            )
            return False
        if auth.removeprefix("Bearer ") not in repo.tokens:
            self._error(
                403,
                "Access to model is restricted and you are not in the authorized list.",
                code="GatedRepo",
                commit=repo.sha,
            )
            return False
        return True

    def _resolve(self, repo_id: str, rev: str, name: str, head: bool) -> None:
        hub = self.server.hub
        repo = hub.repos.get(repo_id)
        if repo is None:
            self._error(401, "Repository not found", code="RepoNotFound")
            return
        if rev not in ("main", repo.sha):
            self._error(404, f"Invalid rev id: {rev}", code="RevisionNotFound")
            return
        f = repo.files.get(name)
        if f is None:
            self._error(404, "Entry not found", code="EntryNotFound", commit=repo.sha)
            return
        if not self._authorize(repo):
            return
        meta = {
            "X-Repo-Commit": repo.sha,
            "ETag": f'"{f.sha256}"',
            "X-Linked-Etag": f'"{f.sha256}"',
            "X-Linked-Size": str(f.size),
        }
        if hub.redirect and f.lfs:
            location = f"{hub.cdn_url}/blobs/{f.sha256}?repo={repo.id}&file={f.name}"
            self._status = 302
            self.send_response(302)
            for k, v in meta.items():
                self.send_header(k, v)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._serve(repo, f, head, meta)

    def _serve_cdn(self, repo_id: str, name: str, head: bool) -> None:
        repo = self.server.hub.repos.get(repo_id)
        f = repo.files.get(name) if repo else None
        if repo is None or f is None:
            self._error(404, "NoSuchKey")
            return
        self._serve(repo, f, head, {"ETag": f'"{f.sha256}"'})

    def _serve(self, repo: Repo, f: HubFile, head: bool, meta: dict[str, str]) -> None:
        hub = self.server.hub
        fault = None if head else hub._take_fault(repo.id, f.name)
        if fault is not None and fault.kind == "status":
            self._error(fault.status, f"Injected HTTP {fault.status}", extra=fault.headers)
            return
        start, end = 0, f.size
        rng = self.headers.get("Range")
        partial = False
        if rng and not (fault is not None and fault.kind == "ignore_range"):
            try:
                spec = rng.strip().removeprefix("bytes=")
                a, _, b = spec.partition("-")
                start = int(a)
                end = min(int(b) + 1, f.size) if b else f.size
            except ValueError:
                self._error(400, "Bad Range")
                return
            if start >= f.size:
                self._status = 416
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{f.size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            partial = True
        self._status = 206 if partial else 200
        self.send_response(self._status)
        for k, v in meta.items():
            self.send_header(k, v)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        if partial:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{f.size}")
        self.end_headers()
        if head:
            return
        self._body(f, start, end, fault)

    def _body(self, f: HubFile, start: int, end: int, fault: Fault | None) -> None:
        hub = self.server.hub
        deadline = time.monotonic() + BODY_DEADLINE_S
        if fault is None and f.path is not None:
            self.wfile.flush()
            with f.path.open("rb") as fh:
                self._sent += self.connection.sendfile(fh, start, end - start)
            return
        pos = start
        while pos < end:
            if hub.stopping.is_set() or time.monotonic() > deadline:
                self._abort()
                return
            n = min(_CHUNK, end - pos)
            if fault is not None:
                if fault.kind == "drop" and pos + n > fault.at >= pos:
                    n = fault.at - pos
                    if n <= 0:
                        self._abort()
                        return
                elif fault.kind == "trickle" and pos >= fault.at:
                    n = min(n, max(1, fault.rate // 20))
                    time.sleep(n / fault.rate)
                elif fault.kind == "stall" and pos >= fault.at:
                    hub.stopping.wait(fault.seconds)  # once, at the first chunk boundary past `at`
                    fault = None
                    continue
            data = f.read(pos, pos + n)
            if fault is not None and fault.kind == "wrong_bytes" and pos <= fault.at < pos + n:
                i = fault.at - pos
                data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]
            self.wfile.write(data)
            self._sent += len(data)
            pos += n
        self.wfile.flush()

    def _abort(self) -> None:
        """Drop the connection mid-body, as a lost network does."""
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- small answers --------------------------------------------------------------------------

    def _json(self, body: Any) -> None:
        data = json.dumps(body).encode()
        self._status = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        commit: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps({"error": message}).encode()
        self._status = status
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


@functools.cache
def tiny_model_bytes() -> bytes:
    """The tiny gpt-oss GGUF of tests/fixtures/tiny_gptoss.py (deterministic), as bytes."""
    from tests.fixtures.tiny_gptoss import write_tiny_gptoss

    with tempfile.TemporaryDirectory() as folder:
        return write_tiny_gptoss(Path(folder) / "tiny.gguf").read_bytes()


def make_gguf_like(size: int, seed: int = 0) -> bytes:
    """`size` deterministic bytes that are a real model: the tiny gpt-oss GGUF (2 layers), followed
    by filler that depends on `seed` (the validator and llama.cpp read nothing after the last tensor),
    so that downloads pass the check that they are the model that was asked for. Below the tiny
    model's size: bytes that only start with the GGUF magic (not a model)."""
    block = hashlib.sha256(f"hearth-{seed}".encode()).digest() * 2048  # 64 KiB
    model = tiny_model_bytes()
    head = model if size >= len(model) else b"GGUF"
    return (head + block * ((size - len(head)) // len(block) + 1))[:size]


if __name__ == "__main__":  # serve a directory of .gguf files by hand: python tests/hub_server.py DIR
    import sys

    folder = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    srv = HubServer()
    srv.add_repo("local/models", {p.name: p for p in folder.glob("*.gguf")})
    srv.start()
    print(f"HF_ENDPOINT={srv.url}  (repo local/models)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()
        os._exit(0)
