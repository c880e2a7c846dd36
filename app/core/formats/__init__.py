"""Prompt formats: harmony for gpt-oss, the GGUF's Jinja template, or the family's known format."""

from __future__ import annotations

from app.core.formats.base import ChatFormat
from app.core.gguf_file import ModelInfo


def format_for(info: ModelInfo) -> ChatFormat:
    """The format a model speaks: decided from its GGUF metadata alone (no model load)."""
    # Imports are local so that importing the package stays cheap for the CLI's fast paths.
    if info.is_gpt_oss:
        from app.core.formats.harmony import HarmonyFormat

        return HarmonyFormat()
    from app.core.formats.template import TemplateFormat, fallback_format

    if info.chat_template:
        return TemplateFormat("gguf template", info.chat_template, info.bos_token, info.eos_token)
    return fallback_format(
        info.architecture, info.control_tokens, info.bos_token, info.eos_token, chat_tuned=looks_chat_tuned(info)
    )


def looks_chat_tuned(info: ModelInfo) -> bool:
    """Whether a GGUF without a chat template still holds a chat (instruction-tuned) model.

    llama.cpp's converter records the fine-tune from the model's name ("it", "instruct", "chat");
    a file with neither that nor a template is taken for a base model.
    """
    words = f"{info.finetune} {info.name} {info.path.name}".lower().replace("_", "-")
    return any(tag in words for tag in ("-it", " it", "instruct", "chat", "-sft", "-dpo", "-rl"))
