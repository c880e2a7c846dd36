"""Engines: where tokens come from.

- `types`: requests, sampling, load results and errors that every backend shares (no llama.cpp).
- `protocol`: the `Backend` protocol the chat service drives.
- `host`: the local backend — llama.cpp in a child process that Hearth starts and owns.
- `child`: that child process's main loop around `llama.Engine`.
- `llama`: llama.cpp itself (only ever imported inside the engine process, tests and benchmarks).
- `wire`: the framed messages between the two processes.

Importing this package never imports llama.cpp.
"""

from __future__ import annotations

from app.core.engine.types import (
    ContextOverflowError,
    EngineBusyError,
    EngineCrashedError,
    EngineError,
    GenerateRequest,
    LoadResult,
    Sampling,
    default_sampling,
)

__all__ = [
    "ContextOverflowError",
    "EngineBusyError",
    "EngineCrashedError",
    "EngineError",
    "GenerateRequest",
    "LoadResult",
    "Sampling",
    "default_sampling",
]
