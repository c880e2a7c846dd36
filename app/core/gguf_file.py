"""Read and validate a GGUF file before llama.cpp sees it (llama.cpp may abort on bad files).

`inspect_gguf(path) -> ModelInfo` parses the header, the metadata and the tensor list with its own
bounds-checked reader and checks that every tensor's data lies inside the file, without reading any
tensor data. Any problem raises `GGUFError` with one sentence for the user: not a GGUF, empty,
truncated (header, metadata, tensor list, tensor data), damaged, a missing split part, a vocabulary
without weights, an architecture the bundled llama.cpp does not know.

Why not `gguf.GGUFReader`: it builds a numpy view per string, so on a 262k-token vocabulary it
takes tens of seconds (34 s measured on the Gemma 3 270M starter), and it trusts the tensor offsets.
We still use the gguf package for its tables (quantization block sizes, file type names).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any


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
    finetune: str = ""  # general.finetune, e.g. "it", "instruct" (empty for base models)
    sliding_window: int = 0  # 0: no sliding-window attention
    n_swa_layers: int = 0  # how many layers use the sliding window (per-architecture pattern)
    n_experts: int = 0
    n_experts_used: int = 0
    n_vocab: int = 0
    chat_template: str | None = None  # tokenizer.chat_template
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    bos_token: str = ""  # text of the BOS token, e.g. "<bos>" (what templates call bos_token)
    eos_token: str = ""
    control_tokens: tuple[str, ...] = ()  # texts of CONTROL / USER_DEFINED tokens (for the guard)
    file_type: str = ""  # quantization label, e.g. "MXFP4", "Q4_K_M"
    tensor_bytes: int = 0  # sum of tensor data sizes
    output_tensor_bytes: int = 0  # token_embd / output, kept on CPU or GPU depending on offload
    split_paths: tuple[Path, ...] = field(default_factory=tuple)
    n_tensors: int = 0  # all split parts together
    tokenizer_model: str = ""  # tokenizer.ggml.model, e.g. "gpt2" (byte-level BPE), "llama" (SentencePiece)

    @property
    def is_gpt_oss(self) -> bool:
        return self.architecture == "gpt-oss"


# The architectures the llama.cpp vendored by llama-cpp-python 0.3.36 knows: LLM_ARCH_NAMES in its
# src/llama-arch.cpp, without "(unknown)" and "clip" (a vision projector, never a main model).
# There is no cheap API to ask llama.cpp; update this list together with the llama-cpp-python pin.
LLAMA_CPP_ARCHITECTURES: frozenset[str] = frozenset({
    "afmoe", "apertus", "arcee", "arctic", "arwkv7", "baichuan", "bailingmoe", "bailingmoe2",
    "bailingmoe3", "bert", "bitnet", "bloom", "chameleon", "chatglm", "codeshell", "cogvlm",
    "cohere2", "cohere2moe", "command-r", "dbrx", "deci", "deepseek", "deepseek2", "deepseek2-ocr",
    "deepseek32", "deepseek4", "dflash", "dots1", "dots3note", "dream", "eagle3", "ernie4_5",
    "ernie4_5-moe", "eurobert", "exaone", "exaone-moe", "exaone4", "falcon", "falcon-h1", "gemma",
    "gemma-embedding", "gemma2", "gemma3", "gemma3n", "gemma4", "gemma4-assistant", "glm-dsa", "glm4",
    "glm4moe", "glm5-next", "gpt-oss", "gpt2", "gptj", "gptneox", "granite", "granite_swa",
    "granitehybrid", "granitemoe", "graniteswitch", "grok", "grovemoe", "hrm_text", "hunyuan-dense",
    "hunyuan-moe", "hunyuan_vl", "hy_v3", "hy_v4", "internlm2", "jais", "jais2", "jamba", "jina-bert-v2",
    "jina-bert-v3", "kimi-k3", "kimi-linear", "laguna", "lfm2", "lfm2moe", "llada", "llada-moe", "llama",
    "llama-embed", "llama4", "maincoder", "mamba", "mamba2", "maple", "mellum", "mimo2", "minicpm",
    "minicpm3", "minimax-01", "minimax-m2", "minimax-m3", "mistral3", "mistral4", "modern-bert", "mpt",
    "muse-glimmer", "nanbeige", "nemotron", "nemotron_h", "nemotron_h_moe", "neo-bert", "nomic-bert",
    "nomic-bert-moe", "olmo", "olmo2", "olmoe", "openelm", "orion", "paddleocr", "pangu-embedded", "phi2",
    "phi3", "phimoe", "plamo", "plamo2", "plamo3", "plm", "pockettts", "qwen", "qwen2", "qwen2moe",
    "qwen2vl", "qwen3", "qwen35", "qwen35moe", "qwen3moe", "qwen3next", "qwen3tts", "qwen3vl",
    "qwen3vlmoe", "qwen4exp", "refact", "rnd1", "rwkv6", "rwkv6qwen2", "rwkv7", "seed_oss", "smallthinker",
    "smollm3", "spark2_5", "stablelm", "starcoder", "starcoder2", "step35", "t5", "t5encoder", "talkie",
    "wavtokenizer-dec", "xverse",
})  # fmt: skip

# Which layers use sliding-window attention, as llama.cpp's per-model `load_swa_pattern(ml, n,
# dense_first)` decides it (src/models/*.cpp): with period n, layer il slides when
# il % n < n - 1 (the last layer of each period attends fully), or with dense_first when
# il % n != 0. So gpt-oss (n=2) slides on every other layer, n_layers - n_layers // 2 of them (12 of
# 24); gemma2 the same; gemma3 (n=6) on 5 of each 6 (n_layers - n_layers // 6: 15 of 18); cohere2
# (n=4) on 3 of 4. A `{arch}.attention.sliding_window_pattern` key overrides the period (a number)
# or lists every layer (an array of bools). Architectures not listed here count 0 sliding layers.
_SWA_PATTERNS: dict[str, tuple[int, bool]] = {
    "gpt-oss": (2, False), "gemma2": (2, False), "gemma3": (6, False), "gemma3n": (5, False),
    "gemma-embedding": (6, False), "cohere2": (4, False), "cohere2moe": (4, True), "exaone4": (4, False),
    "exaone-moe": (4, False), "olmo2": (4, False), "llama4": (4, False), "afmoe": (4, False),
    "mellum": (4, False), "muse-glimmer": (4, False), "plamo3": (8, False), "smallthinker": (4, True),
    "laguna": (4, True), "modern-bert": (3, True),
}  # fmt: skip
# Sliding windows llama.cpp assumes when the file does not say.
_DEFAULT_SWA: dict[str, int] = {"gemma2": 4096}

GGUF_MAGIC = b"GGUF"
_DEFAULT_ALIGNMENT = 32
_MAX_DIMS = 4
_MAX_TENSOR_NAME = 63  # GGML_MAX_NAME (64) including the terminating NUL
# Sanity bounds: beyond these a count or length is corruption, not a big model.
_MAX_COUNT = 1 << 24  # metadata entries, tensors
_MAX_STRING = 64 << 20  # one metadata string (chat templates are < 100 KB)
_MAX_ARRAY = 1 << 31  # elements of one metadata array
_KEEP_ARRAY_BYTES = 64 << 20  # numeric arrays larger than this are skipped, not read
_KEEP_STRINGS = 4096  # string arrays longer than this are skipped unless asked for by key
_WANTED_STRING_ARRAYS = frozenset({"tokenizer.ggml.tokens"})
_CHUNK = 4 << 20

# GGUF metadata value types (GGUF spec; gguf.GGUFValueType has the same numbers).
_UINT8, _INT8, _UINT16, _INT16, _UINT32, _INT32, _FLOAT32, _BOOL, _STRING, _ARRAY = range(10)
_UINT64, _INT64, _FLOAT64 = 10, 11, 12
_SCALAR_CODES = {
    _UINT8: "B", _INT8: "b", _UINT16: "H", _INT16: "h", _UINT32: "I", _INT32: "i", _FLOAT32: "f",
    _BOOL: "?", _UINT64: "Q", _INT64: "q", _FLOAT64: "d",
}  # fmt: skip
_SCALARS = {t: struct.Struct("<" + c) for t, c in _SCALAR_CODES.items()}
_U32 = _SCALARS[_UINT32]
_U64 = _SCALARS[_UINT64]
_HEADER = struct.Struct("<4sIQQ")

_TOKEN_CONTROL, _TOKEN_USER_DEFINED = 3, 4  # gguf.TokenType
_GGML_MXFP4 = 39  # gguf.GGMLQuantizationType.MXFP4
# ggml types / file types the installed gguf package may not know yet.
_EXTRA_QUANT_SIZES: dict[int, tuple[int, int]] = {42: (64, 18)}  # Q2_0: (block size, bytes per block)
_EXTRA_TYPE_NAMES: dict[int, str] = {42: "Q2_0"}
_EXTRA_FILE_TYPES: dict[int, str] = {41: "Q2_0"}

_SPLIT_NAME = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)


# The gguf package (with numpy behind it) costs ~0.2 s to import: only inspect_gguf pays it, not
# every module that imports ModelInfo.
@functools.cache
def _quant_sizes() -> dict[int, tuple[int, int]]:
    from gguf import GGML_QUANT_SIZES

    return {int(k): v for k, v in GGML_QUANT_SIZES.items()} | _EXTRA_QUANT_SIZES


def _type_name(ggml_type: int) -> str:
    from gguf import GGMLQuantizationType

    try:
        return GGMLQuantizationType(ggml_type).name
    except ValueError:
        return _EXTRA_TYPE_NAMES.get(ggml_type, f"type {ggml_type}")


def _file_type_name(ftype: int) -> str:
    from gguf import LlamaFileType

    try:
        name = LlamaFileType(ftype).name
    except ValueError:
        return _EXTRA_FILE_TYPES.get(ftype, "")
    return "" if name == "GUESSED" else name.removeprefix("MOSTLY_").removeprefix("ALL_")


class _Truncated(Exception):
    """The file ended at byte `at` while `where` was being read."""

    def __init__(self, at: int) -> None:
        super().__init__(at)
        self.at = at


class _Damaged(Exception):
    """A count, length, type or offset that no valid GGUF file can hold."""


class _StringArray:
    """A metadata string array kept as the raw windows it was read from plus where each string
    starts; strings are decoded on access (the caller needs a few thousand of 262k tokens)."""

    def __init__(self) -> None:
        self._segments: list[tuple[bytes, list[int]]] = []
        self._ends: list[int] = []  # cumulative string counts, for bisect
        self._len = 0

    def add_segment(self, data: bytes, starts: list[int]) -> None:
        if starts:
            self._segments.append((data, starts))
            self._len += len(starts)
            self._ends.append(self._len)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> str:
        if not 0 <= index < self._len:
            raise IndexError(index)
        k = bisect.bisect_right(self._ends, index)
        data, starts = self._segments[k]
        start = starts[index - (self._ends[k - 1] if k else 0)]
        n = _U64.unpack_from(data, start - 8)[0]
        return data[start : start + n].decode("utf-8", errors="replace")


class _Skipped:
    """Placeholder for a metadata array too large to be worth reading."""

    def __init__(self, count: int) -> None:
        self.count = count


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int  # from the start of the data section
    nbytes: int


@dataclass
class _Part:
    path: Path
    size: int
    metadata: dict[str, Any]
    tensors: list[_Tensor]


class _Reader:
    """Sequential little-endian reads from a file through a window of a few MB, so that a 12 GB
    model costs only its metadata. Reading past the end raises `_Truncated`."""

    def __init__(self, f: IO[bytes], size: int) -> None:
        self._f = f
        self.size = size
        self.pos = 0
        self._base = 0
        self._data = b""

    def _window(self, n: int) -> int:
        """Make bytes [pos, pos + n) available; return their index in self._data."""
        start = self.pos - self._base
        if 0 <= start and start + n <= len(self._data):
            return start
        if self.pos + n > self.size:
            raise _Truncated(self.size)
        self._f.seek(self.pos)
        self._data = self._f.read(max(n, _CHUNK))
        self._base = self.pos
        if len(self._data) < n:  # the file shrank while we read it
            raise _Truncated(self.pos + len(self._data))
        return 0

    def scalar(self, st: struct.Struct) -> Any:
        i = self._window(st.size)
        self.pos += st.size
        return st.unpack_from(self._data, i)[0]

    def u32(self) -> int:
        return int(self.scalar(_U32))

    def u64(self) -> int:
        return int(self.scalar(_U64))

    def string(self) -> str:
        n = self.u64()
        if n > _MAX_STRING:
            raise _Damaged
        i = self._window(n)
        self.pos += n
        return self._data[i : i + n].decode("utf-8", errors="replace")

    def skip(self, n: int) -> None:
        if self.pos + n > self.size:
            raise _Truncated(self.size)
        self.pos += n

    def numeric_array(self, vtype: int, count: int) -> tuple[Any, ...] | _Skipped:
        st = struct.Struct(f"<{count}{_SCALAR_CODES[vtype]}")
        if st.size > _KEEP_ARRAY_BYTES:
            self.skip(st.size)
            return _Skipped(count)
        i = self._window(st.size)
        self.pos += st.size
        return st.unpack_from(self._data, i)

    def string_array(self, count: int, keep: bool) -> _StringArray | _Skipped:
        """The hot loop of the whole inspection (262k vocabulary strings, or 450k BPE merges to skip):
        it only records where each string starts; _StringArray decodes the few that are asked for."""
        if not keep:
            return self._skip_strings(count)
        strings = _StringArray()
        starts: list[int] = []
        append = starts.append
        unpack = _U64.unpack_from
        data, base, pos = self._data, self._base, self.pos
        end_of_data = base + len(data)
        for _ in range(count):
            if pos + 8 > end_of_data or pos < base:
                self.pos = pos
                self._window(8)
                strings.add_segment(data, starts)
                starts = []
                append = starts.append
                data, base = self._data, self._base
                end_of_data = base + len(data)
            n = unpack(data, pos - base)[0]
            if n > _MAX_STRING:
                raise _Damaged
            if pos + 8 + n > end_of_data:
                # Reload from the length field, so that each string's length and bytes share a window.
                self.pos = pos
                self._window(8 + n)
                strings.add_segment(data, starts)
                starts = []
                append = starts.append
                data, base = self._data, self._base
                end_of_data = base + len(data)
            pos += 8
            append(pos - base)
            pos += n
        self.pos = pos
        strings.add_segment(data, starts)
        return strings

    def _skip_strings(self, count: int) -> _Skipped:
        unpack = _U64.unpack_from
        data, base, pos = self._data, self._base, self.pos
        end_of_data = base + len(data)
        for _ in range(count):
            if pos + 8 > end_of_data or pos < base:
                self.pos = pos
                self._window(8)
                data, base = self._data, self._base
                end_of_data = base + len(data)
            n = unpack(data, pos - base)[0]
            if n > _MAX_STRING:
                raise _Damaged
            pos += 8 + n
        if pos > self.size:
            raise _Truncated(self.size)
        self.pos = pos
        return _Skipped(count)

    def value(self, key: str, vtype: int) -> Any:
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype = self.u32()
            count = self.u64()
            if count > _MAX_ARRAY:
                raise _Damaged
            if etype == _STRING:
                return self.string_array(count, keep=key in _WANTED_STRING_ARRAYS or count <= _KEEP_STRINGS)
            if etype in _SCALAR_CODES:
                return self.numeric_array(etype, count)
            raise _Damaged  # nested arrays: in the spec, but llama.cpp rejects them
        st = _SCALARS.get(vtype)
        if st is None:
            raise _Damaged
        return self.scalar(st)


def _shown(text: str) -> str:
    """A name from the file, safe to put in a message (damaged files hold any bytes)."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= 64 else clean[:61] + "..."


def _pad(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


def _truncated(label: str, at: int, where: str) -> GGUFError:
    return GGUFError(f"{label} is incomplete (it ends at byte {at:,}, inside its {where}); download it again.")


def _read_part(path: Path, label: str) -> _Part:
    """Parse and bounds-check one GGUF file (one split part); `label` names it in messages."""
    try:
        size = path.stat().st_size
        f = path.open("rb")
    except FileNotFoundError:
        raise GGUFError(f"The model file {path} does not exist.") from None
    except IsADirectoryError:
        raise GGUFError(f"{path} is a folder, not a GGUF model file.") from None
    except OSError as exc:
        raise GGUFError(f"The model file {path} cannot be read ({exc.strerror or exc}).") from None
    with f:
        if path.is_dir():
            raise GGUFError(f"{path} is a folder, not a GGUF model file.")
        if size == 0:
            raise GGUFError(f"{label} is empty; download it again.")
        try:
            return _parse(f, size, path, label)
        except OSError as exc:
            raise GGUFError(f"The model file {path} cannot be read ({exc.strerror or exc}).") from None


def _check_magic(head: bytes, size: int, label: str) -> None:
    magic = head[:4]
    if magic == GGUF_MAGIC:
        return
    if size < 4 and GGUF_MAGIC.startswith(magic):
        raise _truncated(label, size, "header")
    if magic in (b"lmgg", b"fmgg", b"tjgg", b"ggml", b"ggmf", b"ggjt"):
        raise GGUFError("This is an old GGML model file; llama.cpp now needs the newer GGUF format.")
    text = head.lstrip()[:64].lower()
    if text.startswith((b"<!doctype", b"<html", b"<?xml", b"{", b"entry not found", b"access to model")):
        raise GGUFError("This file is a web page or an error message, not a GGUF model; download it again.")
    raise GGUFError("This file is not a GGUF model file.")


def _parse(f: IO[bytes], size: int, path: Path, label: str) -> _Part:
    head = f.read(_HEADER.size)
    _check_magic(head, size, label)
    if len(head) < _HEADER.size:
        raise _truncated(label, size, "header")
    _, version, n_tensors, n_kv = _HEADER.unpack(head)
    if version & 0xFFFF == 0 and version:
        raise GGUFError(f"{label} was written for a big-endian computer and cannot be loaded here.")
    if version == 1:
        raise GGUFError(f"{label} uses GGUF version 1, which llama.cpp no longer supports.")
    if version not in (2, 3):
        raise GGUFError(f"{label} uses GGUF version {version}, which this version of llama.cpp does not support.")
    if n_tensors > _MAX_COUNT or n_kv > _MAX_COUNT:
        raise GGUFError(f"{label} is damaged: its header claims {n_kv:,} metadata entries and {n_tensors:,} tensors.")

    r = _Reader(f, size)
    r.pos = _HEADER.size
    where = "metadata"
    metadata: dict[str, Any] = {}
    tensors: list[_Tensor] = []
    try:
        for _ in range(n_kv):
            key = r.string()
            vtype = r.u32()
            if not key or key in metadata:
                raise _Damaged
            metadata[key] = r.value(key, vtype)

        alignment = metadata.get("general.alignment", _DEFAULT_ALIGNMENT)
        valid = isinstance(alignment, int) and not isinstance(alignment, bool) and alignment > 0
        if not valid or alignment & (alignment - 1):
            raise GGUFError(f"{label} is damaged: its data alignment ({alignment!r}) is not a power of two.")

        where = "tensor list"
        seen: set[str] = set()
        for _ in range(n_tensors):
            name = r.string()
            if len(name.encode()) > _MAX_TENSOR_NAME or name in seen:
                raise _Damaged
            seen.add(name)
            n_dims = r.u32()
            if n_dims > _MAX_DIMS:
                raise _Damaged
            shape = tuple(r.u64() for _ in range(n_dims))
            ggml_type = r.u32()
            offset = r.u64()
            nbytes = _tensor_nbytes(name, shape, ggml_type, label)
            tensors.append(_Tensor(name, shape, ggml_type, offset, nbytes))
    except _Truncated as exc:
        raise _truncated(label, exc.at, where) from None
    except _Damaged:
        raise GGUFError(f"{label} is damaged: its {where} cannot be read.") from None

    _check_tensor_data(tensors, _pad(r.pos, alignment), alignment, size, label)
    return _Part(path, size, metadata, tensors)


def _tensor_nbytes(name: str, shape: tuple[int, ...], ggml_type: int, label: str) -> int:
    sizes = _quant_sizes().get(ggml_type)
    if sizes is None:
        raise GGUFError(
            f"{label} stores tensor '{_shown(name)}' in ggml type {ggml_type}, "
            "which this version of llama.cpp does not know."
        )
    block, type_size = sizes
    n = 1
    for d in shape:
        if d >= 1 << 63:
            raise GGUFError(f"{label} is damaged: tensor '{_shown(name)}' has an impossible shape.")
        n *= d
    if n >= 1 << 63:
        raise GGUFError(f"{label} is damaged: tensor '{_shown(name)}' has an impossible shape.")
    if (shape[0] if shape else 1) % block:
        kind = _type_name(ggml_type)
        raise GGUFError(f"{label} is damaged: tensor '{_shown(name)}' has rows that do not fit {kind} blocks.")
    return n // block * type_size


def _check_tensor_data(tensors: list[_Tensor], data_start: int, alignment: int, size: int, label: str) -> None:
    """llama.cpp requires the tensors to be packed in order, each padded to the alignment, and each
    one's bytes inside the file (the last tensor need not be padded)."""
    expected = 0
    data_end = data_start
    for t in tensors:
        if t.offset != expected:
            raise GGUFError(f"{label} is damaged: tensor '{_shown(t.name)}' is not where its header says.")
        expected += _pad(t.nbytes, alignment)
        data_end = max(data_end, data_start + t.offset + t.nbytes)
    if tensors and data_end > size:
        raise GGUFError(f"{label} is incomplete (truncated at byte {size:,} of {data_end:,}); download it again.")


def _split_parts(path: Path, first: _Part) -> list[Path]:
    """All parts of a split model (`name-00001-of-00003.gguf`), in order, starting from any part."""
    m = _SPLIT_NAME.match(path.name)
    declared = first.metadata.get("split.count")
    if m is None:
        if isinstance(declared, int) and declared > 1:
            raise GGUFError(
                f"This model is split into {declared} files, but '{path.name}' is not named like "
                "'name-00001-of-0000N.gguf', so the other parts cannot be found."
            )
        return [path]
    count = int(m.group("count"))
    if count < 1 or int(m.group("no")) > count:
        raise GGUFError(f"'{path.name}' is named like a split model part, but its part number is impossible.")
    prefix, of = m.group("prefix"), m.group("count")
    return [path.with_name(f"{prefix}-{i:05d}-of-{of}.gguf") for i in range(1, count + 1)]


def _read_parts(path: Path) -> list[_Part]:
    given = _read_part(path, "This GGUF file")
    paths = _split_parts(path, given)
    if len(paths) == 1:
        return [given]
    parts: list[_Part] = []
    for i, p in enumerate(paths, start=1):
        if p == path:
            parts.append(given)
            continue
        if not p.exists():
            raise GGUFError(f"This model is split into {len(paths)} files, but part {i} ({p.name}) is missing.")
        parts.append(_read_part(p, f"Part {i} of this model ({p.name})"))
    declared_tensors = parts[0].metadata.get("split.tensors.count")
    total = sum(len(p.tensors) for p in parts)
    if isinstance(declared_tensors, int) and declared_tensors != total:
        raise GGUFError(
            f"The parts of this split model hold {total:,} tensors instead of {declared_tensors:,}; "
            "one of them comes from a different download."
        )
    return parts


def _int(value: Any, default: int = 0) -> int:
    """A metadata number; for per-layer arrays (e.g. head_count_kv) the largest entry."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, tuple) and value and all(isinstance(v, (int, float)) for v in value):
        return int(max(value))
    return default


def _count_swa_layers(arch: str, md: dict[str, Any], n_layers: int, window: int) -> int:
    if window <= 0:
        return 0
    pattern = md.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(pattern, tuple) and pattern:
        return sum(1 for v in pattern[:n_layers] if v)
    if arch not in _SWA_PATTERNS:
        return 0
    period, dense_first = _SWA_PATTERNS[arch]
    if isinstance(pattern, int) and not isinstance(pattern, bool):
        period = pattern
    if period == 0:  # llama.cpp: every layer slides
        return n_layers
    if dense_first:
        return sum(1 for il in range(n_layers) if il % period != 0)
    return sum(1 for il in range(n_layers) if il % period < period - 1)


def _file_type_label(md: dict[str, Any], tensors: list[_Tensor]) -> str:
    if any(t.ggml_type == _GGML_MXFP4 and "_exps" in t.name for t in tensors):
        return "MXFP4"
    ftype = md.get("general.file_type")
    if isinstance(ftype, int) and not isinstance(ftype, bool):
        name = _file_type_name(ftype)
        if name:
            return name
    # No label in the file: name it after the type holding most bytes of the 2-D weights.
    by_type: dict[int, int] = {}
    for t in tensors:
        if len(t.shape) >= 2:
            by_type[t.ggml_type] = by_type.get(t.ggml_type, 0) + t.nbytes
    return _type_name(max(by_type, key=lambda k: by_type[k])) if by_type else ""


def _token_text(tokens: _StringArray, token_id: int | None) -> str:
    return tokens[token_id] if token_id is not None and 0 <= token_id < len(tokens) else ""


def inspect_gguf(path: str | Path) -> ModelInfo:
    """Validate a GGUF model (all parts of a split one) and describe it; raises GGUFError."""
    path = Path(path)
    parts = _read_parts(path)
    first = next((p for p in parts if "general.architecture" in p.metadata), parts[0])
    md = first.metadata
    tensors = [t for p in parts for t in p.tensors]

    arch = md.get("general.architecture")
    general_type = md.get("general.type")
    if general_type == "adapter" or md.get("adapter.type") is not None:
        raise GGUFError("This GGUF file is a LoRA adapter, not a model; open the model it belongs to.")
    if arch == "clip" or general_type == "mmproj":
        raise GGUFError("This GGUF file is a vision projector (mmproj), not a chat model.")
    if not isinstance(arch, str) or not arch:
        raise GGUFError("This GGUF file does not say which model architecture it holds.")
    if arch not in LLAMA_CPP_ARCHITECTURES:
        raise GGUFError(f"This model's architecture '{_shown(arch)}' is not supported by this version of llama.cpp.")
    if not tensors:
        raise GGUFError("This GGUF file holds only a tokenizer vocabulary, no model weights.")

    def need(key: str) -> int:
        value = _int(md.get(f"{arch}.{key}"), -1)
        if value < 0:
            raise GGUFError(f"This GGUF file lacks the '{arch}.{key}' setting, so llama.cpp cannot load it.")
        return value

    n_layers = need("block_count")
    n_embd = need("embedding_length")
    n_ctx_train = need("context_length")
    n_head = _int(md.get(f"{arch}.attention.head_count"))
    n_head_kv = _int(md.get(f"{arch}.attention.head_count_kv"), n_head)
    fallback_head_dim = n_embd // n_head if n_head else 0
    head_dim_k = _int(md.get(f"{arch}.attention.key_length"), fallback_head_dim)
    head_dim_v = _int(md.get(f"{arch}.attention.value_length"), fallback_head_dim)
    window = _int(md.get(f"{arch}.attention.sliding_window"), _DEFAULT_SWA.get(arch, 0))

    tokens = md.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, _StringArray):
        tokens = _StringArray()
    types = md.get("tokenizer.ggml.token_type")
    control: tuple[str, ...] = ()
    if isinstance(types, tuple):
        is_special = frozenset({_TOKEN_CONTROL, _TOKEN_USER_DEFINED}).__contains__
        ids = itertools.compress(range(min(len(types), len(tokens))), map(is_special, types))
        control = tuple(tokens[i] for i in ids)
    bos = md.get("tokenizer.ggml.bos_token_id")
    eos = md.get("tokenizer.ggml.eos_token_id")
    bos_id = int(bos) if isinstance(bos, int) else None
    eos_id = int(eos) if isinstance(eos, int) else None
    template = md.get("tokenizer.chat_template")
    name = md.get("general.name")
    output_names = {"token_embd.weight", "output.weight"}

    return ModelInfo(
        path=parts[0].path,  # llama.cpp must be given the first part of a split model
        file_size=sum(p.size for p in parts),
        architecture=arch,
        name=name if isinstance(name, str) and name.strip() else _display_stem(path),
        n_layers=n_layers,
        n_ctx_train=n_ctx_train,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim_k=head_dim_k,
        head_dim_v=head_dim_v,
        sliding_window=window,
        n_swa_layers=_count_swa_layers(arch, md, n_layers, window),
        n_experts=_int(md.get(f"{arch}.expert_count")),
        n_experts_used=_int(md.get(f"{arch}.expert_used_count")),
        n_vocab=len(tokens),
        chat_template=template if isinstance(template, str) and template else None,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        bos_token=_token_text(tokens, bos_id),
        eos_token=_token_text(tokens, eos_id),
        control_tokens=control,
        file_type=_file_type_label(md, tensors),
        tensor_bytes=sum(t.nbytes for t in tensors),
        output_tensor_bytes=sum(t.nbytes for t in tensors if t.name in output_names),
        split_paths=tuple(p.path for p in parts) if len(parts) > 1 else (),
        n_tensors=len(tensors),
        finetune=str(md.get("general.finetune", "") or ""),
        tokenizer_model=str(md.get("tokenizer.ggml.model", "")),
    )


def _display_stem(path: Path) -> str:
    m = _SPLIT_NAME.match(path.name)
    return m.group("prefix") if m else path.stem
