"""What every engine backend shares: requests, sampling, load results, errors.

Nothing here imports llama.cpp: the window's process uses these types to talk to an engine that
runs elsewhere (a child process, or — later — a remote server).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from app.core.formats.base import Conversation

if TYPE_CHECKING:
    from app.core.gguf_file import ModelInfo
    from app.core.planner import LoadPlan


class EngineError(RuntimeError):
    """Something the user must be told, in one sentence."""


class ContextOverflowError(EngineError):
    """A single message (with the system prompt) does not fit in the model's context."""


class EngineBusyError(EngineError):
    """A generation is already running on this engine."""


class EngineCrashedError(EngineError):
    """The engine process died (an abort in llama.cpp, a driver crash, killed by the OS)."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail  # llama.cpp's own last message, when there was one


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen. The one sampling type: the catalog's per-model values, the
    window's settings and API requests all arrive as one of these."""

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    seed: int | None = None  # None: a fresh random seed per reply

    def __post_init__(self) -> None:
        for name in ("temperature", "top_p", "min_p", "repeat_penalty"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"The sampling setting {name} must be a finite number, not {value!r}.")
        if self.temperature < 0 or not 0 <= self.top_p <= 1 or not 0 <= self.min_p <= 1 or self.repeat_penalty <= 0:
            raise ValueError(
                "Sampling settings out of range: temperature ≥ 0, top-p and min-p between 0 and 1, "
                "repeat penalty above 0."
            )
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"The sampling setting top_k must be a whole number ≥ 0, not {self.top_k!r}.")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sampling:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# OpenAI's guidance for gpt-oss: temperature 1.0, top_p 1.0 (and no other truncation).
GPT_OSS_SAMPLING = Sampling(temperature=1.0, top_p=1.0, top_k=0, min_p=0.0)


def default_sampling(info: ModelInfo) -> Sampling:
    """The sampling a model gets when the caller does not choose: its catalog entry's values
    (matched by file name), else OpenAI's for gpt-oss, else a general default."""
    from app.core.catalog import CatalogError, load_catalog

    try:
        catalog = load_catalog()
    except CatalogError:
        catalog = None
    if catalog is not None:
        name = info.path.name.lower()
        for entry in catalog:
            if any(f.name.rsplit("/", 1)[-1].lower() == name for f in entry.files):
                return entry.sampling
    if info.is_gpt_oss:
        return GPT_OSS_SAMPLING
    return Sampling()


@dataclass(frozen=True)
class GenerateRequest:
    conversation: Conversation
    effort: str = "medium"
    date: str | None = None
    max_tokens: int | None = None
    sampling: Sampling | None = None  # None: the model's defaults
    ignore_eos: bool = False  # generate max_tokens whatever the model says (benchmarks), like llama-server's
    stop: tuple[str, ...] = ()  # the caller's own stop strings (the API's `stop`), besides the format's
    # Whose conversation this is (e.g. "c12-1764623412000000"): the engine keeps and saves the KV
    # state per session, so that switching back, or reopening after a restart, evaluates only what
    # is new. None: not kept (a one-off question).
    session: str | None = None
    # A llama.cpp grammar (GBNF) the reply must follow (tests use one to make a tiny model write a
    # real harmony tool call). It must end with the format's stop marker written as a string
    # ("<|call|>"): once a grammar is complete llama.cpp only allows end-of-generation tokens, and
    # a generation that goes on after that aborts the engine process.
    grammar: str | None = None


@dataclass
class LoadResult:
    """A model that is loaded and ready, as the window shows it: `name`, `reason` (the planner's
    sentence, or where a remote model runs), `engine` ("CPU · 2 threads", "Remote · gpu-box:8080").
    `info` and `plan` exist only for a local GGUF; `remote` names the server of a remote one."""

    info: ModelInfo | None
    plan: LoadPlan | None
    load_s: float
    notices: list[str] = field(default_factory=list)  # e.g. what a memory retry changed
    engine: str = ""
    remote: str = ""  # "host:port" of a remote engine, "" for a local one
    remote_name: str = ""  # a remote model's name as its server gives it
    remote_reasoning: bool = False  # a remote model that takes reasoning_effort (gpt-oss)

    @property
    def name(self) -> str:
        return self.info.name if self.info is not None else self.remote_name

    @property
    def reason(self) -> str:
        if self.plan is not None:
            return self.plan.reason
        return f"Runs on {self.remote}." if self.remote else ""

    @property
    def takes_effort(self) -> bool:
        """Whether the reasoning-effort switch applies (gpt-oss, locally or remotely)."""
        return self.info.is_gpt_oss if self.info is not None else self.remote_reasoning


def engine_label(plan: LoadPlan) -> str:
    """The header's short engine status for a local plan."""
    if plan.n_gpu_layers <= 0:
        return f"CPU · {plan.n_threads} thread{'s' if plan.n_threads != 1 else ''}"
    total = plan.n_layers_total or plan.n_gpu_layers
    device = plan.device.upper() if len(plan.device) <= 4 else plan.device.title()
    return f"{device} · {min(plan.n_gpu_layers, total)}/{total} layers"


class CancelToken(threading.Event):
    """The stop switch of one generation. Setting it — from any thread, at any time, even before
    the generation has started — stops that generation and no other; backends that must act on a
    cancel (send it to their process, arm a watchdog) register a callback with `on_cancel`."""

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: list[Callable[[], None]] = []
        self._callbacks_lock = threading.Lock()

    def set(self) -> None:
        super().set()
        with self._callbacks_lock:
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Call `callback` once when the token is set (at once if it already is)."""
        with self._callbacks_lock:
            if not self.is_set():
                self._callbacks.append(callback)
                return
        callback()
