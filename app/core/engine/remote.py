"""A remote engine: any OpenAI-compatible server (llama-server, vLLM, Ollama, LM Studio, another
Hearth) as a backend of the chat service, so the window does not know the difference.

"Loading" a remote model checks that the server answers and offers it. A reply streams from
`POST /v1/chat/completions` (server-sent events); the model's reasoning comes from
`reasoning_content` (llama-server, vLLM), `reasoning` (Ollama, LM Studio) or inline `<think>` tags,
and reaches the Thinking section. Stop closes the stream. Everything the server sends is checked:
a page of HTML, malformed events, an empty reply or a dropped connection each end the reply with a
sentence (the text that came is kept). Every call is recorded in netlog (the Offline indicator).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from app.core import netlog
from app.core.engine.types import CancelToken, EngineError, GenerateRequest, LoadResult
from app.core.formats.base import (
    AnswerDelta,
    Done,
    Event,
    GenerationStats,
    Message,
    ParsedEvent,
    ReasoningDelta,
    ToolCallEvent,
)
from app.core.netlog import host_of

if TYPE_CHECKING:
    import httpx

    from app.core.gguf_file import ModelInfo
    from app.core.planner import LoadPlan

log = logging.getLogger("hearth.remote")

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 600.0  # a big model on a busy server may think for minutes before its first token
MAX_EVENT_BYTES = 4 << 20
MAX_MODELS = 10_000


def normalise_url(url: str) -> str:
    """The API root ('http://host:8080/v1') from what a user types ('host:8080', '…/v1/')."""
    raw = url.strip()
    if not raw:
        raise EngineError("Enter the server's address, e.g. http://gpu-box.local:8080.")
    parts = urlsplit(raw if "://" in raw else "http://" + raw)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        raise EngineError(f"'{raw[:80]}' is not a server address (it should look like http://host:8080).")
    path = parts.path.rstrip("/")
    root = f"{parts.scheme}://{parts.netloc}{path}"
    return root if path.endswith("/v1") else root + "/v1"


class RemoteBackend:
    def __init__(self, base_url: str, api_key: str | None = None, *, client: httpx.Client | None = None) -> None:
        import httpx

        self.base_url = normalise_url(base_url)
        self.host = host_of(self.base_url)
        self._key = api_key
        self._client = client or httpx.Client(timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S))
        self._result: LoadResult | None = None
        self._current: CancelToken | None = None

    # -- the protocol ---------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._result is not None

    @property
    def result(self) -> LoadResult | None:
        return self._result

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"} if self._key else {}

    def models(self) -> list[str]:
        """The ids the server offers; raises EngineError with a sentence."""
        response = self._request("GET", "/models", purpose="model list")
        data = self._json(response)
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise EngineError(f"The server at {self.host} did not send a model list Hearth can read.")
        ids = [m["id"] for m in items[:MAX_MODELS] if isinstance(m, dict) and isinstance(m.get("id"), str)]
        return ids

    def load(
        self,
        model: Path | str,
        *,
        ctx_cap: int | None = None,
        on_plan: Callable[[ModelInfo, LoadPlan], None] | None = None,
        gpu_layers: int | None = None,
    ) -> LoadResult:
        """`gpu_layers` is ignored: the server decides how it runs its model."""
        name = str(model)
        started = time.perf_counter()
        offered = self.models()
        if name not in offered:
            shown = ", ".join(offered[:8]) + (" …" if len(offered) > 8 else "")
            raise EngineError(
                f"The server at {self.host} does not offer '{name[:80]}'; it offers {shown or 'nothing'}."
            )
        self._result = LoadResult(
            None,
            None,
            time.perf_counter() - started,
            engine=f"Remote · {self.host}",
            remote=self.host,
            remote_name=name,
            remote_reasoning="gpt-oss" in name.lower(),
        )
        return self._result

    def interrupt_load(self) -> None:
        pass  # a model list comes back within the connect timeout

    def save_session(self) -> None:
        pass  # the server keeps (or not) its own cache

    def open_session(self, session: str) -> None:
        pass

    def unload(self) -> None:
        self._result = None

    def close(self) -> None:
        self.cancel()
        self._result = None
        self._client.close()

    def cancel(self) -> None:
        token = self._current
        if token is not None:
            token.set()

    # -- HTTP -----------------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, purpose: str, body: dict[str, Any] | None = None) -> httpx.Response:
        import httpx

        netlog.record(self.host, f"remote engine ({purpose})")
        try:
            response = self._client.request(method, self.base_url + path, headers=self._headers(), json=body)
        except httpx.HTTPError as exc:
            raise EngineError(self._unreachable(exc)) from None
        self._check(response)
        return response

    def _unreachable(self, exc: Exception) -> str:
        import httpx

        if isinstance(exc, httpx.ConnectError):
            return f"Hearth cannot reach the server at {self.host}: is it running, and is the address right?"
        if isinstance(exc, httpx.TimeoutException):
            return f"The server at {self.host} did not answer in time."
        return f"The connection to {self.host} failed ({type(exc).__name__})."

    def _check(self, response: httpx.Response) -> None:
        if response.status_code in (401, 403):
            raise EngineError(f"The server at {self.host} refused the API key; check it in Settings → Engines.")
        if response.status_code == 404:
            model = self._result.remote_name if self._result is not None else ""
            what = f"the model '{model}'" if model else "an OpenAI-compatible API"
            raise EngineError(f"The server at {self.host} does not offer {what} at {self.base_url}.")
        if response.status_code >= 400:
            detail = ""
            try:
                error = response.json().get("error")
                detail = error.get("message", "") if isinstance(error, dict) else str(error or "")
            except (ValueError, AttributeError):
                pass
            raise EngineError(
                f"The server at {self.host} answered {response.status_code}" + (f": {detail[:200]}" if detail else ".")
            )
        kind = response.headers.get("content-type", "")
        if "html" in kind:
            raise EngineError(f"The address {self.base_url} answers with a web page, not an OpenAI-compatible API.")

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise EngineError(f"The server at {self.host} sent something that is not JSON.") from None

    # -- a reply ----------------------------------------------------------------------------------

    def generate(self, request: GenerateRequest, cancel: CancelToken | None = None) -> Iterator[Event]:
        return self._stream(request, cancel or CancelToken())

    def body(self, request: GenerateRequest) -> dict[str, Any]:
        result = self._result
        assert result is not None
        body: dict[str, Any] = {
            "model": result.remote_name,
            "messages": [_message(m) for m in request.conversation.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.max_tokens:
            body["max_tokens"] = request.max_tokens
        s = request.sampling
        if s is not None:
            body.update(temperature=s.temperature, top_p=s.top_p)
            if s.top_k:
                body["top_k"] = s.top_k  # llama-server, vLLM and Ollama take it; others ignore it
            if s.seed is not None:
                body["seed"] = s.seed
        if request.stop:
            body["stop"] = list(request.stop)
        if request.ignore_eos:
            body["ignore_eos"] = True  # llama-server's extension (Hearth's and vLLM's too); benchmarks, tests
        if result.remote_reasoning:
            body["reasoning_effort"] = request.effort
        if request.conversation.tools:
            body["tools"] = list(request.conversation.tools)
        return body

    def _stream(self, request: GenerateRequest, cancel: CancelToken) -> Iterator[Event]:
        import httpx

        from app.core.formats.think import ThinkParser

        if self._result is None:
            raise EngineError("No model is loaded.")
        self._current = cancel
        asked = time.perf_counter()
        netlog.record(self.host, "remote engine (chat)")
        stats: dict[str, Any] = {}
        calls: dict[int, dict[str, str]] = {}
        think = ThinkParser()
        first_at = last_at = 0.0
        pieces = 0
        finish = ""
        ended = False  # a [DONE] or a finish_reason: the server finished, rather than went away
        try:
            with self._client.stream(
                "POST", self.base_url + "/chat/completions", headers=self._headers(), json=self.body(request)
            ) as response:
                cancel.on_cancel(response.close)
                self._check(response)
                for data in _sse_data(response, self.host):
                    if cancel.is_set():
                        break
                    if data == "[DONE]":
                        ended = True
                        break
                    chunk = _decode(data, self.host)
                    if isinstance(chunk.get("error"), (dict, str)):
                        error = chunk["error"]
                        message = error.get("message") if isinstance(error, dict) else error
                        raise EngineError(f"The server at {self.host} stopped the reply: {str(message)[:200]}")
                    _usage(chunk, stats)
                    for event in _events(chunk, think, calls):
                        now = time.perf_counter()
                        first_at = first_at or now
                        last_at = now
                        pieces += 1
                        yield event
                    finish = _finish(chunk) or finish
                    ended = ended or bool(finish)
        except httpx.HTTPError as exc:
            if not cancel.is_set():
                reason = "dropped" if first_at else "error"
                what = f"The connection to {self.host} dropped mid-reply." if first_at else self._unreachable(exc)
                yield Done(self._stats(stats, asked, first_at, last_at, pieces), reason, what)
                return
        finally:
            self._current = None
        for event in think.finish():
            yield event
        for index in sorted(calls):
            call = calls[index]
            yield ToolCallEvent(call.get("name", ""), call.get("arguments", ""), call.get("name", ""))
        done_stats = self._stats(stats, asked, first_at, last_at, pieces)
        if cancel.is_set():
            yield Done(done_stats, "cancelled")
        elif not ended:
            yield Done(
                done_stats,
                "dropped" if first_at else "error",
                f"The connection to {self.host} dropped mid-reply."
                if first_at
                else f"The server at {self.host} closed the connection without a reply.",
            )
        elif not first_at and not calls:
            yield Done(done_stats, "error", f"The server at {self.host} sent an empty reply.")
        else:
            stop = {"length": "length", "tool_calls": "tool_call"}.get(finish, "stop")
            yield Done(done_stats, "tool_call" if calls and stop == "stop" else stop)

    @staticmethod
    def _stats(usage: dict[str, Any], asked: float, first_at: float, last_at: float, pieces: int) -> GenerationStats:
        generated = int(usage.get("completion_tokens") or pieces)
        span = last_at - first_at
        rate = float(usage.get("tokens_per_s") or 0.0) or (
            (generated - 1) / span if generated > 1 and span > 0 else 0.0
        )
        prompt = int(usage.get("prompt_tokens") or 0)
        return GenerationStats(
            prompt_tokens=prompt,
            prompt_tokens_evaluated=max(0, prompt - int(usage.get("cached_tokens") or 0)),
            generated_tokens=generated,
            time_to_first_token_s=(first_at - asked) if first_at else 0.0,
            generation_s=max(span, 0.0),
            tokens_per_s=rate,
        )


def _message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id or f"call_{i}", "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for i, c in enumerate(m.tool_calls)
        ]
    if m.role == "tool":
        out["tool_call_id"] = m.tool_call_id or ""
        if m.name:
            out["name"] = m.name
    return out


def _sse_data(response: httpx.Response, host: str) -> Iterator[str]:
    """The `data:` payloads of a server-sent event stream (multi-line events joined)."""
    lines: list[str] = []
    size = 0
    for line in response.iter_lines():
        if not line:
            if lines:
                yield "\n".join(lines)
                lines, size = [], 0
            continue
        if line.startswith(":"):
            continue  # a comment (keep-alive)
        field, _, value = line.partition(":")
        if field != "data":
            continue
        value = value[1:] if value.startswith(" ") else value
        size += len(value)
        if size > MAX_EVENT_BYTES:
            raise EngineError(f"The server at {host} sent an event larger than {MAX_EVENT_BYTES >> 20} MB.")
        lines.append(value)
    if lines:
        yield "\n".join(lines)


def _decode(data: str, host: str) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError:
        raise EngineError(f"The server at {host} sent a reply Hearth could not read (not JSON).") from None
    if not isinstance(chunk, dict):
        raise EngineError(f"The server at {host} sent a reply Hearth could not read.")
    return chunk


def _usage(chunk: dict[str, Any], stats: dict[str, Any]) -> None:
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        for key in ("prompt_tokens", "completion_tokens"):
            if isinstance(usage.get(key), int):
                stats[key] = usage[key]
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
            stats["cached_tokens"] = details["cached_tokens"]
    timings = chunk.get("timings")  # llama-server's own figures
    if isinstance(timings, dict):
        rate = timings.get("predicted_per_second")
        if isinstance(rate, (int, float)) and rate > 0:
            stats["tokens_per_s"] = float(rate)
        cached = timings.get("cache_n")
        if isinstance(cached, int) and "cached_tokens" not in stats:
            stats["cached_tokens"] = cached


def _choice(chunk: dict[str, Any]) -> dict[str, Any]:
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return {}


def _finish(chunk: dict[str, Any]) -> str:
    reason = _choice(chunk).get("finish_reason")
    return reason if isinstance(reason, str) else ""


def _events(chunk: dict[str, Any], think: Any, calls: dict[int, dict[str, str]]) -> Iterator[ParsedEvent]:
    delta = _choice(chunk).get("delta")
    if not isinstance(delta, dict):
        return
    for key in ("reasoning_content", "reasoning"):
        text = delta.get(key)
        if isinstance(text, str) and text:
            yield ReasoningDelta(text)
            break
    content = delta.get("content")
    if isinstance(content, str) and content:
        yield from think.feed(content)  # inline <think>…</think> (e.g. Qwen3 on some servers)
    for call in delta.get("tool_calls") or ():
        if not isinstance(call, dict):
            continue
        raw_index = call.get("index")
        index = raw_index if isinstance(raw_index, int) else len(calls)
        if index not in calls and len(calls) >= 64:
            continue  # bounded: a reply with more calls than that is not taken at its word
        entry = calls.setdefault(index, {"name": "", "arguments": ""})
        raw_function = call.get("function")
        function: dict[str, Any] = raw_function if isinstance(raw_function, dict) else {}
        name, arguments = function.get("name"), function.get("arguments")
        if isinstance(name, str):
            entry["name"] += name
        if isinstance(arguments, str):
            entry["arguments"] += arguments


__all__ = ["AnswerDelta", "RemoteBackend", "host_of", "normalise_url"]
