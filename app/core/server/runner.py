"""Running the API: a socket bound here (so "address in use" is a sentence, not a log line of
uvicorn's), uvicorn serving the app on it — in the caller's thread (`hearth serve`) or a thread
of its own (the window's Settings switch)."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from typing import TYPE_CHECKING

from app.core.server.app import ServerState, create_app

if TYPE_CHECKING:
    from app.core.chat.service import ChatService

log = logging.getLogger("hearth.server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


class ServerError(Exception):
    """The server cannot start; the message is one sentence."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, api_key: str | None) -> None:
    """A server reachable from other machines must have an API key."""
    if not is_loopback(host) and not api_key:
        raise ServerError(
            f"Serving on {host} makes the API reachable from other computers, so it needs an API key "
            "(hearth serve --host … --api-key KEY, or the key Settings generated)."
        )


def bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServerError(f"{host} is not an address of this computer ({exc.strerror}).") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise ServerError(f"Port {port} on {host} is already in use; choose another with --port.") from None
        raise ServerError(f"Cannot listen on {host}:{port} ({exc.strerror or exc}).") from None
    sock.listen(64)
    sock.set_inheritable(False)
    return sock


class ApiServer:
    def __init__(
        self,
        service: ChatService,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        api_key: str | None = None,
        state: ServerState | None = None,
        queue_limit: int | None = None,
    ) -> None:
        import uvicorn

        check_exposure(host, api_key)
        self.host, self.state = host, state or ServerState()
        self._socket = bind(host, port)
        self.port = int(self._socket.getsockname()[1])  # the real one when asked for port 0
        kwargs = {"queue_limit": queue_limit} if queue_limit else {}
        app = create_app(service, api_key=api_key, state=self.state, **kwargs)
        # log_config=None: uvicorn must not install handlers of its own (Hearth logs to its file).
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve in this thread until stop() (or Ctrl+C where this is the main thread)."""
        self._server.run(sockets=[self._socket])

    def start(self) -> None:
        """Serve on a thread of its own; returns once it accepts connections."""
        self._thread = threading.Thread(target=self.serve_forever, name="hearth-api", daemon=True)
        self._thread.start()
        for _ in range(500):  # up to 5 s: it is a socket already bound, so this is quick
            if self._server.started or not self._thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not self._server.started:
            raise ServerError("The API server did not start; the log has the details.")

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._socket.close()
