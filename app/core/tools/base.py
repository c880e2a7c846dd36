"""What a tool is, what running it gives, and the set of tools one reply may use."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.core.engine.types import CancelToken

BUILTIN = "builtin"  # the server name of the tools that come with Hearth

# What the model reads of a result, at most (about 4,000 tokens): the rest stays with the user.
MODEL_RESULT_CHARS = 16_000


class ToolError(Exception):
    """A tool could not run or failed; the message is one sentence, for the model and the user."""


@dataclass(frozen=True)
class ToolOutput:
    text: str
    is_error: bool = False  # the tool ran and reports a failure (MCP's isError)


Runner = Callable[[dict[str, Any], CancelToken], ToolOutput]


@dataclass(frozen=True)
class ToolSpec:
    """One tool as the model is offered it. `name` is what the model calls (unique in a ToolSet);
    `server` and `tool` say whose tool it is: ("builtin", "time"), ("github", "create-issue")."""

    name: str
    server: str
    tool: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    timeout_s: float = 60.0
    ask_every_time: bool = False  # "Always allow" is not offered (the Python tool)

    @property
    def key(self) -> str:
        """What approvals and the per-conversation choice remember: "server/tool"."""
        return f"{self.server}/{self.tool}"

    def definition(self) -> dict[str, Any]:
        """The OpenAI function definition the prompt is rendered from."""
        function: dict[str, Any] = {"name": self.name, "description": self.description}
        function["parameters"] = dict(self.parameters) or {"type": "object", "properties": {}}
        return {"type": "function", "function": function}

    def estimated_tokens(self) -> int:
        """About how many prompt tokens the definition costs (JSON text is ~3 characters a token;
        the TypeScript-like harmony rendering is shorter, so this errs on the safe side)."""
        return len(json.dumps(self.definition(), ensure_ascii=False)) // 3 + 8


_NOT_NAME = re.compile(r"[^A-Za-z0-9_]+")


def model_name(tool: str) -> str:
    """A name the model can call: letters, digits and underscores (MCP allows `-`, `.`, `/`,
    which harmony's TypeScript rendering and some templates cannot hold)."""
    name = _NOT_NAME.sub("_", tool).strip("_") or "tool"
    return name if not name[0].isdigit() else f"t_{name}"


def result_for_model(text: str, limit: int = MODEL_RESULT_CHARS) -> tuple[str, str | None]:
    """(what the model reads, the whole text when that was cut): a 5 MB result must not fill the
    context, but the user can still see all of it."""
    if len(text) <= limit:
        return text, None
    note = f"\n[… cut here: the result has {len(text):,} characters; the model sees the first {limit:,}.]"
    return text[:limit] + note, text


@dataclass
class ToolSet:
    """The tools one reply may use: their specs, how to run each, and what the user must be told
    (tools left out for the prompt budget, servers that failed to start)."""

    specs: tuple[ToolSpec, ...] = ()
    runners: dict[str, Runner] = field(default_factory=dict)  # by spec name
    left_out: tuple[str, ...] = ()  # keys of tools not offered (budget, count)
    problems: tuple[str, ...] = ()  # one sentence per server that could not be used

    def find(self, name: str) -> ToolSpec | None:
        name = name.removeprefix("functions.")
        return next((s for s in self.specs if s.name == name), None)

    def definitions(self) -> tuple[dict[str, Any], ...]:
        return tuple(s.definition() for s in self.specs)

    def run(self, spec: ToolSpec, arguments: dict[str, Any], cancel: CancelToken) -> ToolOutput:
        return self.runners[spec.name](arguments, cancel)

    def notices(self) -> list[str]:
        """Sentences for the user about this set (shown before the reply)."""
        out = list(self.problems)
        if self.left_out:
            shown = ", ".join(self.left_out[:10]) + (
                f" and {len(self.left_out) - 10} more" if len(self.left_out) > 10 else ""
            )
            out.append(
                f"{len(self.left_out)} tool{'s' if len(self.left_out) != 1 else ''} left out to keep the prompt "
                f"within its budget: {shown}."
            )
        return out
