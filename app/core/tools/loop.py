"""The parts of the chat service's tool loop: running one call, and a reply's rounds as prompt
messages (the same function for the round in progress and for a conversation rebuilt from the
store, so that both render the same bytes).

Every failure becomes a result the model can read and a sentence the user sees: arguments that
are not a JSON object, a tool nobody offers, a tool that raises, one that runs past its timeout,
a denial, Stop.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, replace

from app.core.engine.types import CancelToken
from app.core.formats.base import Message as PromptMessage
from app.core.formats.base import ToolCallRequest
from app.core.store import ToolCall
from app.core.tools.base import ToolError, ToolOutput, ToolSet, result_for_model

log = logging.getLogger("hearth.tools")

MAX_ROUNDS = 8  # tool rounds per reply
MAX_ARGUMENT_CHARS = 200_000


@dataclass(frozen=True)
class CallResult:
    status: str  # done | failed | denied | cancelled
    for_model: str  # what the model reads (cut short)
    whole: str | None  # the whole result when for_model was cut
    error: str | None  # a sentence for the user when it failed
    duration_s: float


def parse_arguments(text: str) -> dict[str, object]:
    """The call's arguments as a JSON object; ToolError with a sentence the model can act on."""
    if len(text) > MAX_ARGUMENT_CHARS:
        raise ToolError(f"The arguments are longer than {MAX_ARGUMENT_CHARS:,} characters.")
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolError(
            f"The arguments are not valid JSON ({exc.msg} at character {exc.pos}); send a JSON object."
        ) from None
    if not isinstance(value, dict):
        raise ToolError("The arguments must be a JSON object.")
    return value


def run_call(tools: ToolSet, name: str, arguments: str, cancel: CancelToken) -> CallResult:
    """Run one call on a thread of its own, at most its tool's timeout, stopped by `cancel`.
    Never raises."""
    started = time.monotonic()
    spec = tools.find(name)
    if spec is None:
        offered = ", ".join(s.name for s in tools.specs) or "none"
        return _failed(f"There is no tool named {name[:100]!r}; the tools offered are: {offered}.", started)
    try:
        parsed = parse_arguments(arguments)
    except ToolError as exc:
        return _failed(str(exc), started)
    done = threading.Event()
    box: list[ToolOutput | BaseException] = []
    own = CancelToken()  # set on Stop and on timeout: the tool ends its own work (kills its process)
    cancel.on_cancel(own.set)

    def work() -> None:
        try:
            box.append(tools.run(spec, parsed, own))
        except BaseException as exc:  # noqa: BLE001 - any failure of a tool is the model's to read
            box.append(exc)
        finally:
            done.set()
            wake.set()

    wake = threading.Event()  # the tool finished, or Stop
    cancel.on_cancel(wake.set)
    threading.Thread(target=work, name=f"hearth-tool-{spec.name}", daemon=True).start()
    wake.wait(spec.timeout_s)
    if not done.is_set():
        own.set()
        if cancel.is_set():
            return replace(cancelled_result(), duration_s=time.monotonic() - started)
        return _failed(f"The tool did not finish within {spec.timeout_s:g} seconds and was stopped.", started)
    if cancel.is_set():
        return replace(cancelled_result(), duration_s=time.monotonic() - started)
    outcome = box[0]
    if isinstance(outcome, ToolError):
        return _failed(str(outcome), started)
    if isinstance(outcome, BaseException):
        log.warning("tool %s raised %r", spec.key, outcome)
        return _failed(f"The tool failed: {type(outcome).__name__}: {str(outcome)[:500]}", started)
    for_model, whole = result_for_model(outcome.text)
    if outcome.is_error:
        first = outcome.text.strip().splitlines()[0][:300] if outcome.text.strip() else "it reported an error"
        return CallResult(
            "failed", for_model, whole, f"The tool reported an error: {first}", time.monotonic() - started
        )
    return CallResult("done", for_model, whole, None, time.monotonic() - started)


def _failed(sentence: str, started: float) -> CallResult:
    return CallResult("failed", f"Error: {sentence}", None, sentence, time.monotonic() - started)


def denied_result() -> CallResult:
    return CallResult(
        "denied", "The user denied this tool call. Do not try it again; answer without it.", None, "Denied.", 0.0
    )


def cancelled_result() -> CallResult:
    return CallResult("cancelled", "The user stopped this tool call.", None, "Stopped.", 0.0)


def apply(call: ToolCall, result: CallResult) -> ToolCall:
    return replace(
        call,
        status=result.status,
        result=result.for_model,
        result_full=result.whole,
        error=result.error,
        duration_s=round(result.duration_s, 3),
    )


def rounds_as_messages(calls: list[ToolCall]) -> list[PromptMessage]:
    """A reply's tool rounds as prompt messages: per round an assistant message (the round's
    reasoning and preamble, its calls with their generated headers) and a tool message per call.
    Only calls that have a result go in (a call still waiting has none yet)."""
    out: list[PromptMessage] = []
    by_round: dict[int, list[ToolCall]] = {}
    for call in calls:
        by_round.setdefault(call.round, []).append(call)
    for round_ in sorted(by_round):
        group = sorted(by_round[round_], key=lambda c: c.position)
        first = group[0]
        requests = tuple(ToolCallRequest(c.name, c.arguments, c.call_id, c.header) for c in group)
        out.append(PromptMessage("assistant", first.preamble, thinking=first.reasoning or None, tool_calls=requests))
        for c in group:
            out.append(
                PromptMessage("tool", c.result if c.result is not None else "", name=c.name, tool_call_id=c.call_id)
            )
    return out
