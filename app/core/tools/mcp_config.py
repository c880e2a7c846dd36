"""MCP server settings: what Settings edits, what the store keeps, and the `mcpServers` import.

A server is a command and its arguments (stdio) or a URL (streamable HTTP). Environment values
and HTTP headers that look like secrets (API keys, tokens, passwords, Authorization) are kept in
the system keyring (app.core.secrets) under "mcp/<server>/<name>"; the settings keep only their
names. The `mcpServers` JSON shape is the one Claude Desktop, LM Studio (mcp.json) and Jan use:

    {"mcpServers": {"files": {"command": "npx", "args": ["-y", "server-fs", "/tmp"], "env": {...}},
                    "web": {"url": "http://127.0.0.1:8000/mcp", "headers": {...}}}}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from app.core.tools.base import BUILTIN, ToolError

SETTING = "mcp_servers"  # store setting: a list of McpServerConfig.to_json()
MAX_SERVERS = 64
MAX_IMPORT_BYTES = 1 << 20
_SECRET_NAME = re.compile(r"(key|token|secret|passw|auth|credential|cookie|bearer)", re.I)
_SERVER_NAME = re.compile(r"^[\w .@+-]{1,64}$")


class McpConfigError(ToolError):
    """A server's settings (or an imported file) cannot be used; the message says why."""


def looks_secret(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def secret_key(server: str, name: str) -> str:
    return f"mcp/{server}/{name}"


@dataclass(frozen=True)
class McpServerConfig:
    name: str
    command: str = ""  # stdio: the program
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)  # values that are not secret
    url: str = ""  # streamable HTTP: the endpoint, e.g. http://127.0.0.1:8000/mcp
    headers: Mapping[str, str] = field(default_factory=dict)  # values that are not secret
    secrets: tuple[str, ...] = ()  # names of env values (stdio) or headers (HTTP) in the keyring
    enabled: bool = True
    start_timeout_s: float = 60.0  # npx may fetch the server first; a busy machine imports slowly
    call_timeout_s: float = 60.0

    @property
    def transport(self) -> str:
        return "http" if self.url else "stdio"

    def check(self) -> McpServerConfig:
        """This config when usable, else McpConfigError with a sentence."""
        if not _SERVER_NAME.match(self.name) or self.name == BUILTIN:
            raise McpConfigError(
                f"The server name {self.name[:80]!r} cannot be used: 1 to 64 letters, digits, spaces or . _ - @ +"
                + (f', and not "{BUILTIN}".' if self.name == BUILTIN else ".")
            )
        if bool(self.command.strip()) == bool(self.url.strip()):
            raise McpConfigError(f"The server {self.name!r} needs either a command or a URL (one of them).")
        if self.url and not re.match(r"^https?://[^\s/]+", self.url):
            raise McpConfigError(f"The URL of {self.name!r} must start with http:// or https://.")
        if not (0 < self.start_timeout_s <= 600 and 0 < self.call_timeout_s <= 3600):
            raise McpConfigError(f"The timeouts of {self.name!r} are out of range.")
        return self

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["args"], data["secrets"] = list(self.args), list(self.secrets)
        data["env"], data["headers"] = dict(self.env), dict(self.headers)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> McpServerConfig:
        try:
            return cls(
                name=str(data["name"]),
                command=str(data.get("command") or ""),
                args=tuple(str(a) for a in data.get("args") or ()),
                env={str(k): str(v) for k, v in dict(data.get("env") or {}).items()},
                url=str(data.get("url") or ""),
                headers={str(k): str(v) for k, v in dict(data.get("headers") or {}).items()},
                secrets=tuple(str(s) for s in data.get("secrets") or ()),
                enabled=bool(data.get("enabled", True)),
                start_timeout_s=float(data.get("start_timeout_s", 60.0)),
                call_timeout_s=float(data.get("call_timeout_s", 60.0)),
            ).check()
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise McpConfigError(f"A saved MCP server's settings are damaged ({type(exc).__name__}).") from None

    def with_secrets_split(
        self, env: Mapping[str, str], headers: Mapping[str, str]
    ) -> tuple[McpServerConfig, dict[str, str]]:
        """(this config with secret-looking values moved out, {secret name: value})."""
        plain_env = {k: v for k, v in env.items() if not looks_secret(k)}
        plain_headers = {k: v for k, v in headers.items() if not looks_secret(k)}
        secret = {k: v for k, v in (*env.items(), *headers.items()) if looks_secret(k) and v}
        config = replace(
            self, env=plain_env, headers=plain_headers, secrets=tuple(sorted(set(self.secrets) | set(secret)))
        )
        return config, secret


def parse_mcp_servers(text: str | bytes) -> list[tuple[McpServerConfig, dict[str, str]]]:
    """The servers of an `mcpServers` JSON file, each with its secret values (to go to the
    keyring); McpConfigError names what is wrong. Servers marked `"disabled": true` come disabled."""
    if len(text) > MAX_IMPORT_BYTES:
        raise McpConfigError("The file is larger than 1 MB; an mcpServers file is a few lines of JSON.")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise McpConfigError(f"The file is not JSON ({exc}).") from None
    servers = data.get("mcpServers", data.get("servers")) if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise McpConfigError('The file has no "mcpServers" object (the shape Claude Desktop, LM Studio and Jan use).')
    if len(servers) > MAX_SERVERS:
        raise McpConfigError(f"The file lists {len(servers)} servers; at most {MAX_SERVERS} can be imported.")
    out = []
    for name, entry in servers.items():
        if not isinstance(entry, dict):
            raise McpConfigError(f"The server {str(name)[:64]!r} is not a JSON object.")
        kind = str(entry.get("type") or entry.get("transport") or "").lower()
        if kind == "sse":
            raise McpConfigError(
                f"The server {name!r} uses the old SSE transport; Hearth speaks stdio and streamable HTTP."
            )
        env, headers = _strings(name, entry, "env"), _strings(name, entry, "headers")
        args = entry.get("args") or []
        if not isinstance(args, list):
            raise McpConfigError(f'The "args" of {name!r} must be a list of strings.')
        base = McpServerConfig(
            name=str(name),
            command=str(entry.get("command") or ""),
            args=tuple(str(a) for a in args),
            url=str(entry.get("url") or entry.get("serverUrl") or ""),
            enabled=not entry.get("disabled", False),
        )
        config, secret = base.with_secrets_split(env, headers)
        out.append((config.check(), secret))
    return out


def _strings(name: str, entry: Mapping[str, Any], key: str) -> dict[str, str]:
    value = entry.get(key) or {}
    if not isinstance(value, dict):
        raise McpConfigError(f'The "{key}" of {name!r} must be an object of strings.')
    return {str(k): str(v) for k, v in value.items()}


def load_configs(raw: Any) -> tuple[list[McpServerConfig], list[str]]:
    """The saved servers (the store setting's value) and a sentence for each that is damaged."""
    configs: list[McpServerConfig] = []
    problems: list[str] = []
    for item in raw if isinstance(raw, list) else []:
        try:
            configs.append(McpServerConfig.from_json(item if isinstance(item, dict) else {}))
        except McpConfigError as exc:
            problems.append(str(exc))
    return configs, problems
