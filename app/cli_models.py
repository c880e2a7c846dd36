"""`hearth models [--json]`, `hearth download MODEL_ID | REPO [FILE]` and `hearth token set|delete|status`,
wired into app/cli.py by `add_parsers(subparsers)` and `run(args) -> int`.

`hearth download` takes a catalog id (checked against the catalog: size, sha256 where pinned,
architecture) or any Hugging Face repository with GGUF files (checked against the hub's sha256 and
the GGUF validator). It shows a progress bar on a terminal (one line per 10 % otherwise); Ctrl+C
pauses the download and keeps what was fetched, and running the same command again resumes it. A
lost connection is waited out: the download carries on when the hub can be reached again.
`hearth token set` reads the Hugging Face token from standard input (no echo on a terminal) into
the system keyring; HF_TOKEN in the environment is used instead when set. Errors reach the user as
one sentence on stderr with exit code 1 (130 after Ctrl+C).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

from app.core.downloads import format_duration
from app.core.units import format_bytes

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
_BAR_WIDTH = 28
_REDRAW_S = 0.2

_FIT_LABELS = {"gpu": "GPU", "partial": "GPU+CPU", "cpu": "CPU", "too_large": "too large", "unknown": "?"}


def add_parsers(subparsers: Any) -> None:
    models = subparsers.add_parser("models", help="list catalog and installed models with how they fit this machine")
    models.add_argument("--json", action="store_true", help="print a JSON list")
    download = subparsers.add_parser(
        "download", help="download a catalog model or a hub GGUF (Ctrl+C pauses; run again to resume)"
    )
    download.add_argument(
        "model_id",
        metavar="MODEL_ID|REPO",
        help="an id from `hearth models` (e.g. gpt-oss-20b), or a Hugging Face repository (owner/name)",
    )
    download.add_argument(
        "file", nargs="?", metavar="FILE", help="with a repository: which .gguf file (any part of a split model)"
    )
    token = subparsers.add_parser("token", help="the Hugging Face token (for gated models), kept in the system keyring")
    token.add_argument(
        "action",
        choices=("set", "delete", "status"),
        help="set: read the token from standard input; delete: forget it; status: say whether one is saved",
    )


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    from app.core.catalog import CatalogError
    from app.core.downloads import DownloadError
    from app.core.secrets import SecretsError

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        if args.command == "models":
            return _models(args, out)
        if args.command == "download":
            return _download(args.model_id, getattr(args, "file", None), out, err)
        if args.command == "token":
            return _token(args.action, out, err)
    except (CatalogError, DownloadError, SecretsError) as exc:
        err.write(f"hearth: {exc}\n")
        return EXIT_ERROR
    raise ValueError(f"cli_models cannot run the command {args.command!r}")


# ---- hearth models --------------------------------------------------------------------------------


def _models(args: argparse.Namespace, out: TextIO) -> int:
    from app.core import catalog

    rows = catalog.library()
    if args.json:
        json.dump(rows, out, indent=2)
        out.write("\n")
        return EXIT_OK
    width = max(len(r["id"]) for r in rows) + 2
    out.write(f"{'ID':<{width}}{'SIZE':>9}  {'FIT':<11}{'INSTALLED':<11}NAME\n")
    for r in rows:
        size = _gb(r["size_bytes"]) if r.get("size_bytes") else "?"
        fit = _FIT_LABELS.get(r["fit"]["verdict"], r["fit"]["verdict"])
        mark = " *" if r.get("recommended") and r["fit"]["fits"] else ""
        installed = "yes" if r["installed"] else ("broken" if r.get("problem") else "-")
        out.write(f"{r['id']:<{width}}{size:>9}  {fit:<11}{installed:<11}{r['name']}{mark}\n")
        out.write(f"{'':<{width}}{'':>9}  {r['problem'] or r['fit']['reason']}\n")
    if any(r.get("recommended") and r["fit"]["fits"] for r in rows):
        out.write("\n* recommended for this machine\n")
    return EXIT_OK


# ---- hearth download ------------------------------------------------------------------------------


def _download(model_id: str, file: str | None, out: TextIO, err: TextIO) -> int:
    from app.core import catalog
    from app.core.downloads import DownloadManager, JobState

    if "/" in model_id:
        name, ids, enqueue = _hub_model(model_id, file)
    else:
        if file:
            raise catalog.CatalogError(
                f"'{model_id}' is a catalog id, which names its files itself; give a repository (owner/name) "
                "to choose a file."
            )
        entry = catalog.load_catalog().require(model_id)
        name, ids = entry.name, entry.id
        enqueue = lambda m: m.enqueue(entry)  # noqa: E731
    installed = catalog.find_installed(ids)
    if installed is not None and installed.problem is None:
        out.write(f"{name} is already installed: {installed.path}\n")
        return EXIT_OK
    again = f"hearth download {model_id}" + (f" {file}" if file else "")
    manager = DownloadManager()
    try:
        job = enqueue(manager)
        if job.bytes_done:
            out.write(f"Resuming {name} from {_gb(job.bytes_done)}.\n")
        manager.start()
        bar = _ProgressBar(out)
        try:
            while True:
                job = manager.wait(job.id, _REDRAW_S)
                bar.show(job)
                if job.state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED, JobState.PAUSED):
                    break
        except KeyboardInterrupt:
            manager.pause(job.id)
            job = manager.wait(job.id, 60)
            bar.finish()
            err.write(f"hearth: paused with {_gb(job.bytes_done)} kept; run `{again}` again to resume.\n")
            return EXIT_INTERRUPTED
        bar.finish()
    finally:
        manager.close()
    if job.state == JobState.DONE:
        out.write(f"Installed {name}: {job.installed_path}\n")
        return EXIT_OK
    err.write(f"hearth: {job.message}\n")
    if job.state == JobState.PAUSED:
        err.write(f"hearth: run `{again}` again to resume.\n")
    return EXIT_ERROR


def _hub_model(repo: str, file: str | None) -> tuple[str, str, Any]:
    """(name, model id, enqueue function) for a GGUF model of a hub repository."""
    from app.core import secrets
    from app.core.downloads import DownloadError, repo_gguf_models

    models = repo_gguf_models(repo, token=secrets.get_hf_token())
    if not models:
        raise DownloadError(f"The repository {repo} on Hugging Face holds no GGUF model file.")
    if file:
        chosen = [
            m for m in models if file in m.files or file == m.name or file in (f.rsplit("/", 1)[-1] for f in m.files)
        ]
        if not chosen:
            listed = ", ".join(m.files[0] for m in models[:12])
            raise DownloadError(f"{repo} has no GGUF file {file}; it has: {listed}.")
    elif len(models) > 1:
        listed = "\n".join(f"  {m.files[0]}  ({_gb(m.size_bytes)})" for m in models)
        raise DownloadError(
            f"{repo} holds {len(models)} GGUF models; choose one with `hearth download {repo} FILE`:\n{listed}"
        )
    else:
        chosen = models
    model = chosen[0]
    return model.name, model.model_id, lambda m: m.enqueue_files(model.model_id, model.name, repo, list(model.files))


# ---- hearth token -----------------------------------------------------------------------------------


def _token(action: str, out: TextIO, err: TextIO) -> int:
    from app.core import secrets

    if action == "delete":
        secrets.delete_hf_token()
        out.write("The Hugging Face token was removed from the system keyring.\n")
        if secrets.env_token():
            out.write("HF_TOKEN is still set in this environment, and is used while it is.\n")
        return EXIT_OK
    if action == "status":
        if secrets.env_token():
            out.write("HF_TOKEN is set in this environment; Hearth uses it for gated models.\n")
        elif secrets.stored_hf_token():
            out.write("A Hugging Face token is saved in the system keyring.\n")
        else:
            out.write("No Hugging Face token is saved (only gated or private models need one).\n")
        return EXIT_OK
    token = _read_token(err)
    secrets.set_hf_token(token)
    out.write("The Hugging Face token is saved in the system keyring.\n")
    return EXIT_OK


def _read_token(err: TextIO) -> str:
    """The token from standard input: typed without echo on a terminal, else its first line."""
    from app.core.secrets import SecretsError

    stdin = sys.stdin
    if stdin is None:
        raise SecretsError("There is no standard input to read the token from.")
    if stdin.isatty():
        import getpass

        return getpass.getpass("Hugging Face token (input hidden): ", stream=err)
    raw = stdin.buffer.readline(4096)
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretsError(
            "The token on standard input is not text; copy it again from your Hugging Face settings."
        ) from None


class _ProgressBar:
    """A redrawn line on a terminal; on a pipe or a log file, a line per 10 % and per state change."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self._last_draw = 0.0
        self._last_decile = -1
        self._last_message = ""
        self._drawn = False

    def show(self, job: Any) -> None:
        pct = job.percent
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw < _REDRAW_S and job.state.value == "running":
                return
            self._last_draw = now
            filled = int(_BAR_WIDTH * (pct or 0) / 100)
            bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
            total = f" / {_gb(job.bytes_total)}" if job.bytes_total else ""
            speed = f"  {_gb(job.speed)}/s" if job.speed > 0 else ""
            eta = f"  {format_duration(job.eta_seconds)} left" if job.eta_seconds is not None else ""
            status = "" if job.state.value == "running" else f"  {job.state.value}"
            line = f"[{bar}] {pct or 0:5.1f} %  {_gb(job.bytes_done)}{total}{speed}{eta}{status}"
            self.out.write("\r" + line[:120].ljust(100))
            self.out.flush()
            self._drawn = True
            if job.message != self._last_message and _worth_a_line(job.message):
                self.out.write("\n" + job.message + "\n")
            self._last_message = job.message
            return
        decile = int((pct or 0) // 10)
        if decile != self._last_decile and pct is not None:
            self._last_decile = decile
            self.out.write(f"{pct:5.1f} %  {_gb(job.bytes_done)}\n")
        elif job.message != self._last_message and not job.message.startswith("Downloading"):
            self.out.write(job.message + "\n")
        self._last_message = job.message
        self.out.flush()

    def finish(self) -> None:
        if self.tty and self._drawn:
            self.out.write("\n")
            self.out.flush()


def _worth_a_line(message: str) -> bool:
    """Messages that are news to someone watching the bar (a lost connection), not progress."""
    return message.startswith(("Connection problem", "Hugging Face cannot be reached", "Connected again"))


def _gb(n: float | None) -> str:
    return "?" if n is None else format_bytes(n)
