"""All the tools Hearth can offer — built-in and MCP — and the set one conversation offers.

A conversation chooses its tools with selectors ("builtin/calculator", "builtin/*", "github/*",
"github/create-issue"), kept in the store (`conversation_tools`); None means the app's default.
The set a reply gets (`ToolSet`) respects a prompt budget: tool definitions are prompt tokens on
every round, so past MAX_TOOLS or the token budget the rest are left out and the user is told
which. Names the model calls are unique within a set (`calculator`, `github_create_issue` when
two servers both have one).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from app.core.tools.base import BUILTIN, Runner, ToolSet, ToolSpec, model_name
from app.core.tools.builtin import builtin_tools
from app.core.tools.mcp import McpManager

MAX_TOOLS = 64
DEFAULT_BUDGET_TOKENS = 6_000  # of the prompt, for all definitions together
DEFAULT_SELECTORS: tuple[str, ...] = ()  # a new chat offers no tools until the user turns them on


def matches(selector: str, key: str) -> bool:
    server, _, tool = selector.partition("/")
    key_server, _, key_tool = key.partition("/")
    return server == key_server and tool in ("*", key_tool)


class ToolRegistry:
    def __init__(
        self,
        mcp: McpManager | None = None,
        *,
        python: bool = False,
        default_selectors: Iterable[str] = DEFAULT_SELECTORS,
    ) -> None:
        self.mcp = mcp
        self.python = python
        self.default_selectors = tuple(default_selectors)

    def builtin(self) -> list[tuple[ToolSpec, Runner]]:
        return builtin_tools(python=self.python)

    def servers(self) -> list[str]:
        """The enabled MCP servers' names (nothing is started)."""
        return [c.name for c in self.mcp.configs() if c.enabled] if self.mcp is not None else []

    def toolset(
        self,
        selectors: Iterable[str] | None,
        *,
        budget_tokens: int = DEFAULT_BUDGET_TOKENS,
        max_tools: int = MAX_TOOLS,
    ) -> ToolSet:
        """The tools these selectors choose (servers they name are started: blocking, never on
        the GUI thread), within the budget."""
        chosen = tuple(self.default_selectors if selectors is None else selectors)
        if not chosen:
            return ToolSet()
        candidates: list[tuple[ToolSpec, Runner]] = [
            t for t in self.builtin() if any(matches(s, t[0].key) for s in chosen)
        ]
        problems: list[str] = []
        for server in dict.fromkeys(s.partition("/")[0] for s in chosen if not s.startswith(f"{BUILTIN}/")):
            if self.mcp is None or server not in self.servers():
                problems.append(
                    f"The MCP server {server!r} is not configured or is turned off; its tools are not offered."
                )
                continue
            tools, problem = self.mcp.tools(server)
            if problem:
                problems.append(problem)
            candidates += [t for t in tools if any(matches(s, t[0].key) for s in chosen)]
        specs: list[ToolSpec] = []
        runners: dict[str, Runner] = {}
        left_out: list[str] = []
        used = 0
        for spec, runner in candidates:
            cost = spec.estimated_tokens()
            if len(specs) >= max_tools or used + cost > budget_tokens:
                left_out.append(spec.key)
                continue
            spec = replace(spec, name=_unique(spec, runners))
            used += cost
            specs.append(spec)
            runners[spec.name] = runner
        return ToolSet(tuple(specs), runners, tuple(left_out), tuple(problems))


def _unique(spec: ToolSpec, taken: dict[str, Runner]) -> str:
    name = spec.name
    if name in taken:
        name = f"{model_name(spec.server)}_{spec.name}"
    n = 2
    base = name
    while name in taken:
        name = f"{base}_{n}"
        n += 1
    return name
