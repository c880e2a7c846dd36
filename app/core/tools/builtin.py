"""The tools that come with Hearth: all offline. The date and time and the calculator are safe and
allowed without asking until the user revokes that; the Python tool is opt-in and asks every time."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from app.core.engine.types import CancelToken
from app.core.tools import calculator
from app.core.tools.base import BUILTIN, Runner, ToolError, ToolOutput, ToolSpec

TIME = ToolSpec(
    name="current_time",
    server=BUILTIN,
    tool="time",
    description="The current date, time, weekday and time zone of the user's computer (or of a given time zone).",
    parameters={
        "type": "object",
        "properties": {
            "timezone": {
                "type": "string",
                "description": "An IANA time zone such as Europe/Paris or America/New_York; default: the user's",
            }
        },
    },
    timeout_s=5.0,
)
CALCULATOR = ToolSpec(
    name="calculator",
    server=BUILTIN,
    tool="calculator",
    description=calculator.DESCRIPTION,
    parameters=calculator.PARAMETERS,
    timeout_s=5.0,
)
PYTHON = ToolSpec(
    name="python",
    server=BUILTIN,
    tool="python",
    description=(
        "Run a Python 3 program in a fresh process on the user's computer and return what it prints (and the "
        "value of its last expression). No network, no state between calls, a temporary working folder, "
        "10 seconds and 512 MB at most. The user approves every run."
    ),
    parameters={
        "type": "object",
        "properties": {"code": {"type": "string", "description": "The program"}},
        "required": ["code"],
    },
    timeout_s=15.0,
    ask_every_time=True,
)

# Allowed without asking unless the user revokes it (they read the clock, they compute).
SAFE_BY_DEFAULT = (TIME.key, CALCULATOR.key)


def current_time(arguments: dict[str, Any], _cancel: CancelToken) -> ToolOutput:
    zone_name = arguments.get("timezone")
    now = _dt.datetime.now().astimezone()
    if zone_name:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            now = now.astimezone(ZoneInfo(str(zone_name)))
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolError(f"Unknown time zone {zone_name!r}; use an IANA name such as Europe/Paris.") from None
    offset = now.strftime("%z")
    offset = f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"
    zone = f"{now.tzname()} ({offset})" if now.tzname() and now.tzname() != offset else offset
    return ToolOutput(f"{now:%A %Y-%m-%d %H:%M:%S} {zone}")


def calculate(arguments: dict[str, Any], _cancel: CancelToken) -> ToolOutput:
    expression = arguments.get("expression")
    if not isinstance(expression, str):
        raise ToolError('The calculator takes {"expression": "..."} with the expression as text.')
    return ToolOutput(calculator.evaluate(expression))


def run_python(arguments: dict[str, Any], cancel: CancelToken) -> ToolOutput:
    from app.core.tools.python_tool import run_python_code

    code = arguments.get("code")
    if not isinstance(code, str) or not code.strip():
        raise ToolError('The Python tool takes {"code": "..."} with the program as text.')
    return run_python_code(code, cancel)


def builtin_tools(python: bool = False) -> list[tuple[ToolSpec, Runner]]:
    """The built-in tools, the Python one only when the user opted in."""
    tools: list[tuple[ToolSpec, Runner]] = [(TIME, current_time), (CALCULATOR, calculate)]
    if python:
        tools.append((PYTHON, run_python))
    return tools
