"""MCP servers through the official `mcp` SDK (its `Client`): stdio and streamable HTTP.

Each server that a chat needs gets a connection (`McpConnection`) with its own thread running an
asyncio loop; one task of that loop holds the SDK client open (anyio wants a client entered and
left by the same task) and calls run as other tasks. Callers on other threads (the chat service,
never the GUI thread) wait on futures with timeouts; Stop cancels the call's task.

Nothing a server sends is trusted: the tools it lists are capped in number, their names, texts
and schemas in size; a result is cut at MAX_RESULT_CHARS (what the model reads is cut much shorter,
base.result_for_model); a server that does not answer `initialize` within its start timeout, a
command that does not exist, a server that dies mid-call or speaks broken JSON-RPC all end as a
sentence on the server's status line and, for a call, as an error result.

`McpManager` keeps the configured servers, starts each the first time a chat needs it, and stops
them all with the app.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.core.engine.types import CancelToken
from app.core.tools.base import Runner, ToolError, ToolOutput, ToolSpec, model_name
from app.core.tools.mcp_config import McpServerConfig, secret_key

log = logging.getLogger("hearth.tools.mcp")

MAX_TOOLS_PER_SERVER = 200
MAX_NAME_CHARS = 64
MAX_DESCRIPTION_CHARS = 2_000
MAX_SCHEMA_CHARS = 16_000
MAX_RESULT_CHARS = 8_000_000  # kept for the user; beyond this a result is cut even there
_STDERR_TAIL = 2_000


@dataclass(frozen=True)
class ServerStatus:
    """What Settings shows on a server's line."""

    name: str
    state: str  # stopped | starting | ready | failed
    tools: int = 0
    message: str = ""  # the failure's reason; notes such as tools left out

    def sentence(self) -> str:
        if self.state == "ready":
            text = f"Ready with {self.tools} tool{'s' if self.tools != 1 else ''}"
            return f"{text}. {self.message}" if self.message else f"{text}."
        if self.state == "failed":
            return f"Failed: {self.message}"
        return {"starting": "Starting…", "stopped": "Not started (starts when a chat uses it)."}.get(self.state, "")


StatusListener = Callable[[ServerStatus], None]


@dataclass(frozen=True)
class McpTool:
    """One tool as its server listed it (bounded)."""

    name: str
    description: str
    schema: dict[str, Any]


class McpConnection:
    def __init__(
        self,
        config: McpServerConfig,
        secrets: Mapping[str, str] | None = None,
        on_status: StatusListener | None = None,
    ) -> None:
        self.config = config
        self._secrets = dict(secrets or {})
        self._on_status = on_status or (lambda _s: None)
        self.status = ServerStatus(config.name, "stopped")
        self.tools: list[McpTool] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._stderr: Any = None
        self._task: asyncio.Task[None] | None = None
        self._timed_out = ""

    # -- life -------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.status.state == "ready" and not self._closed.is_set()

    def start(self) -> ServerStatus:
        """Start the server and list its tools (blocking, up to its start timeout); returns its status."""
        with self._lock:
            if self.ready:
                return self.status
            self._stop_locked()
            self._ready.clear()
            self._closed.clear()
            self._timed_out = ""
            self._set(ServerStatus(self.config.name, "starting"))
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._thread = threading.Thread(
                target=self._run_loop, args=(loop,), name=f"hearth-mcp-{self.config.name}", daemon=True
            )
            self._thread.start()
        if not self._ready.wait(self.config.start_timeout_s):
            # Cancelled from outside the task: a timeout around the SDK's own task groups would
            # leave its cancel scopes out of order.
            self._timed_out = f"it did not answer within {self.config.start_timeout_s:g} seconds."
            self.stop()
        return self.status

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()
        if self.status.state != "failed":
            self._set(ServerStatus(self.config.name, "stopped"))

    def _stop_locked(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._end_hold)
            except RuntimeError:  # the loop closed meanwhile
                pass
        thread.join(15)
        self._loop = self._thread = None

    def _end_hold(self) -> None:
        """(On the loop.) A ready client is closed gracefully; one still starting is cancelled."""
        if self._client is not None and self._stop is not None:
            self._stop.set()
        elif self._task is not None:
            self._task.cancel()

    def _run_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            self._task = loop.create_task(self._hold())
            loop.run_until_complete(self._task)
        except BaseException as exc:  # noqa: BLE001 - the reason goes on the status line
            if self._timed_out:
                tail = self._stderr_tail()
                self._fail(self._timed_out + (f" It said: {tail.splitlines()[-1][:300]}" if tail else ""))
            elif not isinstance(exc, asyncio.CancelledError):
                self._fail(_reason(exc, self._stderr_tail()))
        finally:
            self._closed.set()
            self._ready.set()
            self._client = None
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
            if self._stderr is not None:
                self._stderr.close()
                self._stderr = None

    async def _hold(self) -> None:
        import anyio
        from mcp import Client

        self._stop = asyncio.Event()
        config = self.config
        transport, http = self._transport()
        # No client-wide read timeout: it would apply to `initialize` too; the start wait and each
        # call have their own limits.
        client = Client(transport, mode="legacy")
        await client.__aenter__()
        try:
            with anyio.fail_after(config.start_timeout_s):
                self.tools, note = await self._list_tools(client)
            self._client = client
            self._set(ServerStatus(config.name, "ready", len(self.tools), note))
            self._ready.set()
            await self._stop.wait()
        finally:
            self._client = None
            try:
                with anyio.fail_after(10):
                    await client.__aexit__(None, None, None)
            except BaseException as exc:  # noqa: BLE001 - a server that dies on the way out
                log.debug("MCP server %s closed badly: %r", config.name, exc)
            if http is not None:
                await http.aclose()

    def _transport(self) -> tuple[Any, Any]:
        config = self.config
        if config.url:
            from mcp.client.streamable_http import streamable_http_client
            from mcp.shared._httpx_utils import create_mcp_http_client

            headers = {**config.headers, **{k: v for k, v in self._secrets.items() if k not in config.env}}
            http = create_mcp_http_client(headers=headers or None)
            return streamable_http_client(config.url, http_client=http), http
        from mcp.client.stdio import StdioServerParameters, stdio_client

        command = shutil.which(config.command) or config.command
        if not os.path.isfile(command):
            raise ToolError(f"the command {config.command!r} was not found.")
        env = {**config.env, **{k: v for k, v in self._secrets.items() if k not in config.headers}}
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
        params = StdioServerParameters(command=command, args=list(config.args), env=env or None)
        return stdio_client(params, errlog=self._stderr), None

    async def _list_tools(self, client: Any) -> tuple[list[McpTool], str]:
        tools: list[McpTool] = []
        skipped = 0
        cursor: str | None = None
        for _page in range(50):
            listing = await client.list_tools(cursor=cursor)
            for tool in listing.tools:
                if len(tools) >= MAX_TOOLS_PER_SERVER:
                    skipped += 1
                    continue
                bounded = _bounded_tool(tool)
                if bounded is None:
                    skipped += 1
                else:
                    tools.append(bounded)
            cursor = listing.next_cursor
            if not cursor:
                break
        note = f"{skipped} tool{'s' if skipped != 1 else ''} left out (too many, or too large)." if skipped else ""
        return tools, note

    # -- calls ------------------------------------------------------------------------------

    def call(
        self, tool: str, arguments: dict[str, Any], cancel: CancelToken, timeout_s: float | None = None
    ) -> ToolOutput:
        """Run a tool (blocking; never on the GUI thread). ToolError for what went wrong."""
        if not self.ready:
            self.start()
        loop, client = self._loop, self._client
        if loop is None or client is None or not self.ready:
            raise ToolError(f"The MCP server {self.config.name!r} is not running: {self.status.message}")
        limit = timeout_s if timeout_s is not None else self.config.call_timeout_s
        future = asyncio.run_coroutine_threadsafe(self._call(client, tool, arguments, limit), loop)
        cancel.on_cancel(lambda: None if future.cancel() else None)
        try:
            return future.result(limit + 5)
        except concurrent.futures.CancelledError:
            raise ToolError("Stopped by the user.") from None
        except (TimeoutError, concurrent.futures.TimeoutError):
            future.cancel()
            raise ToolError(f"The tool did not answer within {limit:g} seconds.") from None
        except ToolError:
            raise
        except BaseException as exc:  # noqa: BLE001 - the SDK's and the transport's errors
            if self._closed.is_set() or _connection_lost(exc):
                self._fail(_reason(exc, self._stderr_tail()))
                self.stop()  # the next call starts it again
                raise ToolError(
                    f"The MCP server {self.config.name!r} stopped during the call: {self.status.message}"
                ) from None
            raise ToolError(f"The MCP server {self.config.name!r} failed: {_reason(exc, '')}") from None

    async def _call(self, client: Any, tool: str, arguments: dict[str, Any], limit: float) -> ToolOutput:
        import anyio

        try:
            with anyio.fail_after(limit):
                result = await client.call_tool(tool, arguments, read_timeout_seconds=limit)
        except TimeoutError:
            raise ToolError(f"The tool did not answer within {limit:g} seconds.") from None
        return _output(result)

    # -- status -----------------------------------------------------------------------------

    def _set(self, status: ServerStatus) -> None:
        self.status = status
        try:
            self._on_status(status)
        except Exception:
            log.exception("MCP status listener failed")

    def _fail(self, message: str) -> None:
        self._set(ServerStatus(self.config.name, "failed", 0, message))

    def _stderr_tail(self) -> str:
        handle = self._stderr
        if handle is None:
            return ""
        try:
            handle.flush()
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _STDERR_TAIL * 4))
            return handle.read()[-_STDERR_TAIL:].strip()
        except (OSError, ValueError):
            return ""


def _bounded_tool(tool: Any) -> McpTool | None:
    name = str(getattr(tool, "name", "") or "")
    if not name or len(name) > MAX_NAME_CHARS:
        return None
    description = str(getattr(tool, "description", "") or "")[:MAX_DESCRIPTION_CHARS]
    schema = getattr(tool, "input_schema", None) or {"type": "object", "properties": {}}
    if not isinstance(schema, dict):
        return None
    try:
        text = json.dumps(schema, ensure_ascii=False)
    except (TypeError, ValueError):
        return None
    if len(text) > MAX_SCHEMA_CHARS:
        return None
    schema = json.loads(text)  # a plain copy, nothing of the SDK's objects kept
    schema.pop("title", None)
    return McpTool(name, description, schema)


def _output(result: Any) -> ToolOutput:
    parts: list[str] = []
    size = 0
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            text = str(getattr(block, "text", ""))
        elif kind in ("image", "audio"):
            data = str(getattr(block, "data", ""))
            text = f"[{kind}: {getattr(block, 'mime_type', '')}, about {len(data) * 3 // 4:,} bytes, not shown]"
        elif kind == "resource":
            resource = getattr(block, "resource", None)
            text = str(getattr(resource, "text", "") or f"[resource {getattr(resource, 'uri', '')}]")
        elif kind == "resource_link":
            text = f"[resource {getattr(block, 'uri', '')}]"
        else:
            text = f"[{kind or 'unknown'} content]"
        parts.append(text)
        size += len(text)
        if size > MAX_RESULT_CHARS:
            break
    if not parts and getattr(result, "structured_content", None) is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    text = "\n".join(parts)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"\n[… cut at {MAX_RESULT_CHARS:,} characters]"
    return ToolOutput(text or "(no output)", is_error=bool(getattr(result, "is_error", False)))


def _connection_lost(exc: BaseException) -> bool:
    from mcp_types import CONNECTION_CLOSED

    error = getattr(exc, "error", None)
    return getattr(error, "code", None) == CONNECTION_CLOSED or type(exc).__name__ in (
        "ClosedResourceError",
        "BrokenResourceError",
        "EndOfStream",
    )


def _reason(exc: BaseException, stderr: str) -> str:
    """A sentence for why a server could not start or stopped (the SDK raises exception groups)."""
    while getattr(exc, "exceptions", None):  # an exception group (no BaseExceptionGroup before 3.11)
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    if isinstance(exc, ToolError):
        text = str(exc)
    elif isinstance(exc, FileNotFoundError):
        text = f"the command {exc.filename or ''} was not found."
    elif isinstance(exc, PermissionError):
        text = f"the command {exc.filename or ''} cannot be run (permission denied)."
    else:
        text = str(exc).strip() or type(exc).__name__
        if _connection_lost(exc):
            text = "the server closed the connection."
        elif "Connect" in type(exc).__name__:
            text = f"cannot connect ({text})."
    if stderr:
        text += f" It said: {stderr.splitlines()[-1][:300]}"
    return text[:600]


class McpManager:
    """The configured servers; each starts when a chat first needs it and stops with the app."""

    def __init__(
        self,
        configs: list[McpServerConfig] | None = None,
        *,
        secret_reader: Callable[[str], str | None] | None = None,
        on_status: StatusListener | None = None,
    ) -> None:
        from app.core import secrets

        self._read_secret = secret_reader or secrets.get_secret
        self._on_status = on_status
        self._lock = threading.Lock()
        self._configs: dict[str, McpServerConfig] = {}
        self._connections: dict[str, McpConnection] = {}
        for config in configs or []:
            self._configs[config.name] = config

    def configs(self) -> list[McpServerConfig]:
        with self._lock:
            return list(self._configs.values())

    def set_configs(self, configs: list[McpServerConfig]) -> None:
        """Replace the settings; servers whose settings changed or went are stopped."""
        with self._lock:
            new = {c.name: c for c in configs}
            gone = [c for name, c in self._connections.items() if new.get(name) != c.config]
            for conn in gone:
                del self._connections[conn.config.name]
            self._configs = new
        for conn in gone:
            conn.stop()

    def status(self, name: str) -> ServerStatus:
        with self._lock:
            conn = self._connections.get(name)
        return conn.status if conn is not None else ServerStatus(name, "stopped")

    def connection(self, name: str) -> McpConnection | None:
        """The server's connection, started if needed (blocking); None for an unknown or disabled one."""
        with self._lock:
            config = self._configs.get(name)
            if config is None or not config.enabled:
                return None
            conn = self._connections.get(name)
            if conn is None:
                secrets = {s: v for s in config.secrets if (v := self._read_secret(secret_key(name, s)))}
                conn = self._connections[name] = McpConnection(config, secrets, self._on_status)
        if not conn.ready:
            conn.start()
        return conn

    def tools(self, name: str) -> tuple[list[tuple[ToolSpec, Runner]], str | None]:
        """The tools of server `name` (started if needed), and a sentence when it cannot be used."""
        conn = self.connection(name)
        if conn is None:
            return [], None
        if not conn.ready:
            return [], f"The MCP server {name!r} could not be used: {conn.status.message}"
        out: list[tuple[ToolSpec, Runner]] = []
        for tool in conn.tools:
            spec = ToolSpec(
                name=model_name(tool.name),
                server=name,
                tool=tool.name,
                description=tool.description,
                parameters=tool.schema,
                timeout_s=conn.config.call_timeout_s,
            )
            out.append((spec, _runner(conn, tool.name, conn.config.call_timeout_s)))
        return out, None

    def stop_all(self) -> None:
        with self._lock:
            connections, self._connections = list(self._connections.values()), {}
        threads = [threading.Thread(target=c.stop, daemon=True) for c in connections]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))


def _runner(conn: McpConnection, tool: str, timeout_s: float) -> Runner:
    def run(arguments: dict[str, Any], cancel: CancelToken) -> ToolOutput:
        return conn.call(tool, arguments, cancel, timeout_s)

    return run
