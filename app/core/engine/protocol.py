"""The backend protocol: what the chat service needs from whatever produces tokens.

The first implementation is the local llama.cpp engine process (`host.LocalBackend`); a remote
OpenAI-compatible server can be a second one. What only a local GGUF has — the load plan, GGUF
metadata, prefix reuse, the choice of llama.cpp build — stays behind the local backend: callers see
a `LoadResult` (name, reason, engine label) and a stream of parsed events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from app.core.engine.types import CancelToken, GenerateRequest, LoadResult
from app.core.formats.base import Event

if TYPE_CHECKING:
    from app.core.gguf_file import ModelInfo
    from app.core.planner import LoadPlan


class Backend(Protocol):
    @property
    def loaded(self) -> bool:
        """Whether a model is loaded and ready to generate."""

    @property
    def result(self) -> LoadResult | None:
        """The loaded model, or None."""

    def load(
        self,
        model: Path | str,
        *,
        ctx_cap: int | None = None,
        on_plan: Callable[[ModelInfo, LoadPlan], None] | None = None,
        gpu_layers: int | None = None,
    ) -> LoadResult:
        """Load a model — a GGUF file (local) or a model's name (remote) — (blocking; called from the
        chat service's thread). Raises EngineError with
        a sentence; EngineCrashedError when the engine died while loading. `on_plan` receives the
        model and its load plan before the slow part starts. `gpu_layers`: the user's choice in
        place of the planner's (None: the planner decides)."""

    def generate(self, request: GenerateRequest, cancel: CancelToken | None = None) -> Iterator[Event]:
        """Parsed events then one Done. Problems with the request raise EngineError before the
        first event; a crash mid-reply ends the stream with Done(stop_reason='crashed')."""

    def cancel(self) -> None:
        """Stop the running generation (any thread), promptly: the local backend ends a
        generation that does not stop within 300 ms by restarting its engine process."""

    def interrupt_load(self) -> None:
        """Abandon a load in progress (any thread); the blocked `load()` raises EngineError."""

    def save_session(self) -> None:
        """Keep the state of the conversation the engine holds (a local engine saves its KV
        state to disk; a remote one has nothing to do)."""

    def open_session(self, session: str) -> None:
        """The app opened a conversation: a local engine brings back its saved KV state now, before
        the user asks (a remote one has nothing to do)."""

    def unload(self) -> None:
        """Free the model and all its memory."""

    def close(self) -> None:
        """Unload and release everything (processes, connections)."""
