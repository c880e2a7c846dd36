"""The tiny synthetic gpt-oss GGUF really loads and generates in llama-cpp-python, with the harmony
special tokens behaving as in the real gpt-oss vocabulary (what the harmony format relies on)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.core.gguf_file import inspect_gguf
from tests.fixtures.tiny_gptoss import N_VOCAB, SPECIAL_IDS, write_tiny_gptoss

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gptoss(tmp_path_factory.mktemp("tiny_gptoss") / "tiny-gpt-oss-mxfp4.gguf")


@pytest.fixture(scope="module")
def llm(tiny_path: Path) -> Iterator[Any]:
    from llama_cpp import Llama

    inspect_gguf(tiny_path)  # the app always validates first
    model = Llama(str(tiny_path), n_ctx=256, n_threads=2, seed=7, verbose=False)
    yield model
    model.close()


def test_loads_with_the_expected_shape(llm: Any) -> None:
    assert llm.n_vocab() == N_VOCAB
    assert llm.n_ctx() == 256
    assert llm.metadata["general.architecture"] == "gpt-oss"
    assert llm.token_bos() == SPECIAL_IDS["<|startoftext|>"]
    assert llm.token_eos() == SPECIAL_IDS["<|return|>"]


def test_harmony_markup_tokenizes_into_the_special_tokens(llm: Any) -> None:
    ids = llm.tokenize(b"<|start|>user<|message|>hi<|end|>", add_bos=False, special=True)
    assert ids[0] == SPECIAL_IDS["<|start|>"]
    assert ids[-1] == SPECIAL_IDS["<|end|>"]
    assert SPECIAL_IDS["<|message|>"] in ids
    assert llm.detokenize(ids, special=True) == b"<|start|>user<|message|>hi<|end|>"
    assert len(llm.tokenize(b"hi", add_bos=False)) == 1  # the fixture's BPE merge "h i"
    assert llm.tokenize(b"hi") == llm.tokenize(b"hi", add_bos=False)  # gpt-4o vocab: no BOS added


def test_which_specials_survive_special_false(llm: Any) -> None:
    """llama.cpp marks <|channel|>, <|message|>, <|start|>, <|constrain|> (and <|end|>, once it drops
    it from end-of-generation) USER_DEFINED, so they become special tokens even with special=False:
    user text holding them must be neutralised before tokenizing."""
    always = ["<|start|>", "<|channel|>", "<|message|>", "<|constrain|>", "<|end|>"]
    only_with_special = ["<|return|>", "<|call|>", "<|endoftext|>", "<|startoftext|>"]
    for text in always:
        assert llm.tokenize(text.encode(), add_bos=False, special=False) == [SPECIAL_IDS[text]], text
    for text in only_with_special:
        assert len(llm.tokenize(text.encode(), add_bos=False, special=False)) > 1, text
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == [SPECIAL_IDS[text]], text


def test_end_of_generation_tokens(llm: Any) -> None:
    """gpt-oss ends a turn on <|return|> or <|call|>; llama.cpp drops <|end|> from the EOG set when
    both are present (it ends every message, not the generation)."""
    import llama_cpp

    vocab = llm._model.vocab
    eog = {i for i in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, i)}
    assert eog == {SPECIAL_IDS["<|return|>"], SPECIAL_IDS["<|call|>"], SPECIAL_IDS["<|endoftext|>"]}


def test_generates_a_few_tokens(llm: Any) -> None:
    prompt = llm.tokenize(b"<|start|>user<|message|>hi<|end|><|start|>assistant", add_bos=False, special=True)
    out: list[int] = []
    for token in llm.generate(prompt, temp=1.0, top_p=1.0, reset=True):
        out.append(token)
        if len(out) == 5:
            break
    assert len(out) == 5
    assert all(0 <= t < N_VOCAB for t in out)


def test_split_model_loads_from_its_first_part(tmp_path: Path) -> None:
    from llama_cpp import Llama

    first = write_tiny_gptoss(tmp_path / "tiny.gguf", split_max_tensors=15)
    info = inspect_gguf(first)
    assert len(info.split_paths) == 3
    model = Llama(str(info.path), n_ctx=128, n_threads=2, verbose=False)
    try:
        assert model.n_vocab() == N_VOCAB
        assert len(model.tokenize(b"hello", add_bos=False)) == 5
    finally:
        model.close()
