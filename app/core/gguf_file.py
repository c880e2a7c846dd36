"""Read and validate a GGUF file before llama.cpp sees it (llama.cpp may abort on bad files).

CONTRACT (implementation pending): `inspect_gguf(path) -> ModelInfo` raises `GGUFError` with one
clear sentence for: not a GGUF, empty, truncated (header, metadata, tensor infos, tensor data
offsets+sizes beyond the file size), an unsupported architecture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class GGUFError(ValueError):
    """The file cannot be used as a model; the message is one sentence for the user."""


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    file_size: int  # bytes on disk, all split parts together
    architecture: str  # general.architecture, e.g. "gpt-oss", "gemma3", "llama"
    name: str  # general.name or the file stem
    n_layers: int  # {arch}.block_count
    n_ctx_train: int  # {arch}.context_length
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim_k: int  # {arch}.attention.key_length, else n_embd // n_head
    head_dim_v: int
    sliding_window: int = 0  # 0: no sliding-window attention
    n_swa_layers: int = 0  # how many layers use the sliding window (per-architecture pattern)
    n_experts: int = 0
    n_experts_used: int = 0
    n_vocab: int = 0
    chat_template: str | None = None  # tokenizer.chat_template
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    control_tokens: tuple[str, ...] = ()  # texts of CONTROL / USER_DEFINED tokens (for the guard)
    file_type: str = ""  # quantization label, e.g. "MXFP4", "Q4_K_M"
    tensor_bytes: int = 0  # sum of tensor data sizes
    output_tensor_bytes: int = 0  # token_embd / output, kept on CPU or GPU depending on offload
    split_paths: tuple[Path, ...] = field(default_factory=tuple)

    @property
    def is_gpt_oss(self) -> bool:
        return self.architecture == "gpt-oss"


def inspect_gguf(path: str | Path) -> ModelInfo:
    raise NotImplementedError
