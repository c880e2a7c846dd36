"""Read and validate a GGUF file before llama.cpp sees it (llama.cpp may abort on bad files).

`inspect_gguf(path) -> ModelInfo` parses the header, the metadata and the tensor list with its own
bounds-checked reader and checks that every tensor's data lies inside the file, without reading any
tensor data. Any problem raises `GGUFError` with one sentence for the user: not a GGUF, empty,
truncated (header, metadata, tensor list, tensor data), damaged, a missing split part, a vocabulary
without weights, an architecture the bundled llama.cpp does not know, and the settings llama.cpp
would abort the whole process on (a GGML_ASSERT or an uncaught C++ exception: layer, expert, head
and context counts, a tokenizer that does not fit its vocabulary, a chat template that does not
compile; see "settings llama.cpp would abort on" below).

Its time is bounded by constants, not by numbers in the file: each loop steps through at most
_MAX_KV, _MAX_TENSORS, _MAX_STRINGS or LLAMA_MAX_LAYERS items (a block count of 4,294,967,295 once
made it loop for minutes). It runs on every library listing: ~85 ms of CPU on the starter's
262k-token vocabulary on the 2-core build machine, most of it the one Python loop over the
vocabulary strings; the vocabulary checks work on numpy arrays, not on a Python object per token.

Why not `gguf.GGUFReader`: it builds a numpy view per string, so on a 262k-token vocabulary it
takes tens of seconds (34 s measured on the Gemma 3 270M starter), and it trusts the tensor offsets.
We still use the gguf package for its tables (quantization block sizes, file type names).
"""

from __future__ import annotations

import bisect
import functools
import math
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


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
    control_tokens: tuple[str, ...] = ()  # texts of CONTROL / USER_DEFINED / UNKNOWN tokens
    user_defined_tokens: tuple[str, ...] = ()  # the USER_DEFINED ones among them (mostly ordinary text: see guard.py)
    file_type: str = ""  # quantization label, e.g. "MXFP4", "Q4_K_M"
    tensor_bytes: int = 0  # sum of tensor data sizes
    output_tensor_bytes: int = 0  # token_embd / output, kept on CPU or GPU depending on offload
    # Repeating-layer matmul weights of the types llama.cpp's CPU backend repacks into its own
    # layout (Q4_0, Q4_K, IQ4_NL, MXFP4): with mmap they are resident twice. -1: not known (all).
    repacked_bytes: int = -1
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
# Every loop of the reader steps through one of these, so they, not the file, bound its time.
_MAX_KV = 1 << 16  # metadata entries (real files have < 100)
_MAX_TENSORS = 1 << 17  # tensors per part: LLAMA_MAX_LAYERS (512) x 256, far above any real model
_MAX_STRING = 64 << 20  # one metadata string (chat templates are < 100 KB)
_MAX_ARRAY = 1 << 31  # elements of one numeric metadata array (read in one struct call, no loop)
# Elements of one string array, each a step of a Python loop (~0.1 us): the largest real ones are
# vocabularies of 262,144 tokens and BPE merge lists of ~500k.
_MAX_STRINGS = 1 << 22
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

_TOKEN_UNKNOWN, _TOKEN_CONTROL, _TOKEN_USER_DEFINED = 2, 3, 4  # gguf.TokenType
_GGML_MXFP4 = 39  # gguf.GGMLQuantizationType.MXFP4
# Types whose matmul weights llama.cpp's CPU backend repacks (ggml-cpu's "repack" buffer type, as
# built by llama-cpp-python 0.3.36 on x86-64): Q4_0, Q4_K, IQ4_NL, MXFP4. Q5_0, Q6_K and Q8_0
# are used in place (measured: tests/e2e/test_planner_memory.py).
_REPACKED_TYPES = frozenset({2, 12, 20, _GGML_MXFP4})
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

    def raw_at(self, index: int) -> bytes:
        """One string's bytes, undecoded (llama.cpp compares tokens as bytes)."""
        k = bisect.bisect_right(self._ends, index)
        data, starts = self._segments[k]
        start = starts[index - (self._ends[k - 1] if k else 0)]
        return data[start : start + _U64.unpack_from(data, start - 8)[0]]

    def byte_keys(self) -> _TokenKeys:
        """Length, first 8 bytes and a 64-bit hash of every string, as numpy arrays.

        Lets the vocabulary checks compare 262k tokens in numpy instead of making a Python bytes
        object of each (which alone doubled inspect_gguf's time). The hash mixes the length with
        the first, middle and last 8 bytes, so equal strings have equal hashes and strings of up to
        24 bytes (every byte token) differ in it unless the arithmetic collides. Inside a segment
        the strings lie back to back: each ends 8 bytes (the next length field) before the next."""
        import numpy as np

        masks = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], np.uint64)
        mix = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))
        lengths, firsts, hashes = [], [], []
        nul_bytes = 0
        for data, starts in self._segments:
            begin = np.fromiter(starts, np.int64, len(starts))
            end = np.empty_like(begin)
            end[:-1] = begin[1:] - 8
            end[-1] = starts[-1] + _U64.unpack_from(data, starts[-1] - 8)[0]
            lo, hi = starts[0], int(end[-1])
            n = end - begin
            # The strings' bytes, with 8 more after them so that an 8-byte read at any string's
            # offset stays inside: the window itself, unless the strings end right at its end.
            buf, base = (data, 0) if hi + 8 <= len(data) else (data[lo:hi] + bytes(8), lo)
            # NUL bytes inside the strings: all of the region's, less those of the length fields
            # between its strings (a length is < 2^32, so its upper 4 bytes are always 0).
            zeros = int(np.count_nonzero(np.frombuffer(buf, np.uint8, hi - lo, lo - base) == 0))
            zeros_in_lengths = sum(int(np.count_nonzero((n[1:] >> (8 * k)) & 0xFF == 0)) for k in range(4))
            nul_bytes += zeros - zeros_in_lengths - 4 * (len(starts) - 1)
            # Overlapping little-endian 8-byte words, one starting at every byte of `buf`.
            words = np.ndarray((len(buf) - 7,), np.dtype("<u8"), buf, strides=(1,))
            mask = masks[np.minimum(n, 8)]
            first = words[begin - base] & mask
            middle = words[begin + np.maximum(n // 2 - 4, 0) - base] & mask
            last = words[np.maximum(end - 8, begin) - base] & mask
            lengths.append(n)
            firsts.append(first)
            hashes.append(first * mix[0] + middle * mix[1] + last * mix[2] + n.astype(np.uint64))
        if not lengths:
            return _TokenKeys(np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros(0, np.uint64), False)
        return _TokenKeys(np.concatenate(lengths), np.concatenate(firsts), np.concatenate(hashes), nul_bytes > 0)


@dataclass
class _TokenKeys:
    lengths: NDArray[np.int64]
    firsts: NDArray[np.uint64]  # the first 8 bytes, little-endian, zero-padded
    hashes: NDArray[np.uint64]
    has_nul: bool  # some string holds a NUL byte (llama.cpp cuts it there)


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

    def numeric_array(self, vtype: int, count: int) -> tuple[Any, ...] | NDArray[Any] | _Skipped:
        """Short arrays (per-layer settings) as a tuple; long ones (a score and a type per token) as a
        numpy array, which costs no Python object per element."""
        code = "<" + _SCALAR_CODES[vtype]
        nbytes = count * struct.calcsize(code)
        if nbytes > _KEEP_ARRAY_BYTES:
            self.skip(nbytes)
            return _Skipped(count)
        i = self._window(nbytes)
        self.pos += nbytes
        if count <= _KEEP_STRINGS:
            return struct.unpack_from(f"<{count}{code[1]}", self._data, i)
        import numpy as np

        return np.frombuffer(self._data, np.dtype(code), count, i).copy()  # copy: free the window

    def string_array(self, count: int, keep: bool) -> _StringArray | _Skipped:
        """The hot loop of the whole inspection (262k vocabulary strings, or 450k BPE merges to skip).

        It walks one window at a time with one unpack and one comparison per string: a length field
        beyond the window ends the inner loop with struct.error, a string beyond it with the
        comparison, and the outer loop moves the window there. Each pass starts with a string that
        fits its window, so every pass makes progress and both loops together run `count` steps.
        Kept arrays record where each string starts; _StringArray decodes the few that are asked for."""
        strings = _StringArray()
        unpack = _U64.unpack_from
        left = count
        while left:
            i = self._window(8)
            n = unpack(self._data, i)[0]
            if n > _MAX_STRING:
                raise _Damaged
            data = self._data
            done = 0
            if keep:
                i = self._window(8 + n)
                data, end = self._data, len(self._data)
                starts: list[int] = []
                append = starts.append
                try:
                    for _ in range(left):
                        j = i + 8 + unpack(data, i)[0]
                        if j > end:
                            break
                        append(i + 8)
                        i = j
                except struct.error:
                    pass
                done = len(starts)
                strings.add_segment(data, starts)
            else:  # skipped strings need not lie in the window, only their length fields
                try:
                    for done in range(left):  # noqa: B007 (read after the loop)
                        i += 8 + unpack(data, i)[0]
                    done = left
                except struct.error:
                    pass
            self.pos = self._base + i
            left -= done
        if self.pos > self.size:
            raise _Truncated(self.size)
        return strings if keep else _Skipped(count)

    def value(self, key: str, vtype: int) -> Any:
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype = self.u32()
            count = self.u64()
            if count > _MAX_ARRAY:
                raise _Damaged
            if etype == _STRING:
                if count > _MAX_STRINGS:
                    raise _Damaged
                return self.string_array(count, keep=key in _WANTED_STRING_ARRAYS or count <= _KEEP_STRINGS)
            if etype in _SCALAR_CODES:
                return self.numeric_array(etype, count)
            raise _Damaged  # nested arrays: in the spec, but llama.cpp rejects them
        st = _SCALARS.get(vtype)
        if st is None:
            raise _Damaged
        return self.scalar(st)


def _shown(text: str, limit: int = 64) -> str:
    """A name from the file, safe to put in a message (damaged files hold any bytes)."""
    # Cut first: the text may be megabytes long, and this loop must not be bounded by the file.
    clean = "".join(c if c.isprintable() else "?" for c in text[: limit + 1])
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


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
    if n_tensors > _MAX_TENSORS or n_kv > _MAX_KV:
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


def _repacked(t: _Tensor) -> bool:
    """A repeating layer's 2-D (or expert 3-D) weight of a type the CPU backend repacks."""
    return t.name.startswith("blk.") and len(t.shape) >= 2 and t.shape[1] > 1 and t.ggml_type in _REPACKED_TYPES


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
    if isinstance(value, tuple) and value:  # numeric arrays are of one type: the first tells
        value = max(value) if isinstance(value[0], (int, float)) else None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and math.isfinite(value):  # int(nan) and int(inf) raise
        return int(value)
    return default


def _array_len(value: Any) -> int | None:
    """How many elements a metadata array has (also one too large to keep); None if not an array."""
    if isinstance(value, _Skipped):
        return value.count
    if isinstance(value, (tuple, _StringArray)) or type(value).__name__ == "ndarray":
        return len(value)
    return None


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
    if period <= 0:  # llama.cpp: 0 means every layer slides (a negative one is not a uint32: none)
        return n_layers if period == 0 else 0
    # Counted, not looped: n_layers comes from the file (a loop over 4,294,967,295 layers once hung
    # here). With dense_first the layers il % period == 0 attend fully, ceil(n / period) of them;
    # otherwise the layers il % period == period - 1 do, floor(n / period) of them.
    if dense_first:
        return n_layers - (n_layers + period - 1) // period
    return n_layers - n_layers // period


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


def _control_tokens(tokens: _StringArray, types: Any, kinds: tuple[int, ...] = ()) -> tuple[str, ...]:
    """Texts of the tokens llama.cpp's special-token pass matches in text (CONTROL, USER_DEFINED and
    UNKNOWN types; the prompt guard decides which of them to neutralise), or of the given `kinds`."""
    if not isinstance(types, tuple) and type(types).__name__ != "ndarray":
        return ()
    import numpy as np

    found = np.asarray(types)[: len(tokens)]
    if found.dtype.kind not in "iub":
        return ()
    wanted = kinds or (_TOKEN_CONTROL, _TOKEN_USER_DEFINED, _TOKEN_UNKNOWN)
    ids = np.flatnonzero(np.isin(found, wanted))
    return tuple(map(tokens.__getitem__, ids.tolist()))


def _token_text(tokens: _StringArray, token_id: int | None) -> str:
    return tokens[token_id] if token_id is not None and 0 <= token_id < len(tokens) else ""


# --- settings llama.cpp would abort on ---------------------------------------------------------
# llama.cpp's load_hparams (src/llama-model.cpp) and load_vocab (src/llama-vocab.cpp) check many
# settings with GGML_ASSERT, which aborts the whole process, and some of its code throws C++
# exceptions where nothing catches them (std::out_of_range from unordered_map::at while
# tokenizing). The checks below refuse those files first, each with a sentence; the comment on
# each names the llama.cpp line it mirrors (llama-cpp-python 0.3.36's vendored llama.cpp). A few
# settings llama.cpp only rejects with a catchable error are checked too, because the error it
# gives ("tensor 'blk.0.attn_k.weight' has wrong shape") means nothing to a user.

_WRONG = "it is damaged or was converted wrongly"
LLAMA_MAX_LAYERS = 512  # src/llama-hparams.h
LLAMA_MAX_EXPERTS = 1024  # src/llama-hparams.h
# The longest context any published model declares is 10,485,760 tokens (Llama 4 Scout). Beyond
# 2^24 a length is corruption, not a model: llama.cpp holds n_ctx in a uint32 and
# llama-cpp-python in a C int (2^32 - 1 and 2^31 overflow them), and its KV cache for 2^24 tokens
# is already far beyond any machine even for the smallest model. 2^24 leaves room for growth.
_MAX_CONTEXT = 1 << 24
# Real chat templates are at most a few tens of KB (gpt-oss's: 16 KB). Jinja needs ~5 ms per KB
# on a slow machine to parse one, so this bounds the template check to about a second.
_MAX_TEMPLATE = 256 << 10
_ROPE_SCALING_TYPES = ("none", "linear", "yarn", "longrope")  # LLAMA_ROPE_SCALING_TYPES
# tokenizer.ggml.model values llama_vocab::impl::load knows; anything else throws there.
_TOKENIZER_MODELS = frozenset({
    "no_vocab", "none", "llama", "bert", "gpt2", "hybriddna", "whitespace", "t5", "rwkv", "test", "plamo2",
    "gemma4",
})  # fmt: skip
# BPE pre-tokenizers that feed raw UTF-8 to the merges instead of GPT-2's byte characters
# (byte_encode = false in llm_tokenizer_bpe): their vocabularies need not hold those characters.
_RAW_UTF8_BPE_PRE = frozenset({"gemma4", "granite-embed-multi-311m", "sarvam-moe", "whitespace"})
# Architectures llama.cpp cannot build without experts: their load_arch_tensors asserts or throws
# when n_expert == 0 (src/models/*.cpp: bailingmoe2, glm4-moe, grovemoe, llada-moe, smallthinker
# assert; the others throw), or, for gpt-oss (openai-moe.cpp), shape the expert tensors by it.
_MOE_ONLY = frozenset({
    "gpt-oss", "bailingmoe", "bailingmoe2", "cohere2moe", "dbrx", "glm4moe", "grok", "grovemoe", "llada-moe",
    "llama4", "maple", "mellum", "olmoe", "qwen2moe", "qwen3moe", "qwen3next", "qwen3vlmoe", "rnd1",
    "smallthinker",
})  # fmt: skip
# Settings llama.cpp reads per layer (get_key_or_arr with n_layer_all): an array must hold one
# value per layer, or it throws "key ... has wrong array length".
_PER_LAYER_KEYS = (
    "attention.head_count", "attention.head_count_kv", "feed_forward_length", "expert_used_count",
    "expert_feed_forward_length",
)  # fmt: skip
# The bytes UTF-8 text can contain: all but 0xC0, 0xC1 and 0xF5-0xFF. llama.cpp's SPM tokenizer
# falls back to byte tokens for any character missing from the vocabulary, so a vocabulary must
# have each of these, or text with some character makes llama.cpp abort.
_TEXT_BYTES = tuple(b for b in range(256) if b not in (0xC0, 0xC1) and b < 0xF5)
_PLAIN_TEXT_BYTES = (0x09, 0x0A, 0x0D, *range(0x20, 0x7F))  # tab, newlines, printable ASCII
_EMPTY_PREFIX = int.from_bytes(b"[EMPTY_", "little")  # what llama.cpp renames empty tokens to


def _wrong(what: str) -> GGUFError:
    return GGUFError(f"This model file {what}; {_WRONG}.")


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _check_layers(arch: str, md: dict[str, Any], n_layers: int) -> None:
    # GGML_ASSERT(hparams.n_layer_all > 0 && hparams.n_layer_all <= LLAMA_MAX_LAYERS)
    if n_layers == 0:
        raise _wrong("says it has 0 layers")
    if n_layers > LLAMA_MAX_LAYERS:
        raise _wrong(f"says it has {n_layers:,} layers, more than the {LLAMA_MAX_LAYERS} llama.cpp can load")
    # GGML_ASSERT(hparams.n_layer_nextn <= hparams.n_layer_all)
    nextn = _int(md.get(f"{arch}.nextn_predict_layers"))
    if nextn > n_layers:
        raise _wrong(f"says {_count(nextn, 'layer')} predict further tokens, but it has only {n_layers}")
    # get_key_or_arr throws "key ... has wrong array length" (llama-model-loader.cpp).
    for key in _PER_LAYER_KEYS:
        count = _array_len(md.get(f"{arch}.{key}"))
        if count is not None and count != n_layers:
            raise _wrong(f"gives its '{key}' for {_count(count, 'layer')} but has {n_layers}")


def _check_context(n_ctx_train: int) -> None:
    # llama_context: n_ctx 0 means "the model's own", and n_ctx_train 0 then fails; a huge one
    # overflows the KV cache size (see _MAX_CONTEXT).
    if n_ctx_train == 0:
        raise _wrong("says its context length is 0 tokens")
    if n_ctx_train > _MAX_CONTEXT:
        raise _wrong(f"says its context length is {n_ctx_train:,} tokens, far beyond any real model")


def _check_experts(arch: str, md: dict[str, Any], tensors: list[_Tensor]) -> None:
    n_expert = _int(md.get(f"{arch}.expert_count"))
    used = _int(md.get(f"{arch}.expert_used_count"))  # per-layer arrays: the largest, as llama.cpp
    groups = _int(md.get(f"{arch}.expert_group_count"))
    group_used = _int(md.get(f"{arch}.expert_group_used_count"))
    # GGML_ASSERT(hparams.n_expert <= LLAMA_MAX_EXPERTS)
    if n_expert > LLAMA_MAX_EXPERTS:
        raise _wrong(f"says it has {n_expert:,} experts, more than the {LLAMA_MAX_EXPERTS:,} llama.cpp supports")
    # GGML_ASSERT(n_expert_used_max <= hparams.n_expert), and for n_expert == 0
    # GGML_ASSERT(n_expert_used_max == 0)
    if used > n_expert:
        has = f"only {n_expert:,}" if n_expert else "none"
        raise _wrong(f"says it uses {_count(used, 'expert')} per token but has {has}")
    if n_expert > 0:
        # GGML_ASSERT(n_expert_used_max > 0)
        if used == 0:
            raise _wrong(f"says it has {_count(n_expert, 'expert')} but uses none of them")
        # GGML_ASSERT(hparams.n_expert_groups < hparams.n_expert); with more than one group
        # GGML_ASSERT(n_expert % n_expert_groups == 0), (n_group_used > 0), (n_group_used < n_expert_groups)
        if groups >= n_expert or (groups > 1 and (n_expert % groups or not 0 < group_used < groups)):
            raise _wrong(
                f"says its {_count(n_expert, 'expert')} form {_count(groups, 'group')} "
                f"of which {group_used:,} are used, which cannot be"
            )
    elif groups:  # GGML_ASSERT(hparams.n_expert_groups == 0)
        raise _wrong(f"says it has no experts but {_count(groups, 'expert group')}")
    if n_expert == 0 and arch in _MOE_ONLY:
        raise _wrong(f"says it has no experts, but {arch} is a mixture-of-experts model")
    # Every architecture shapes ffn_gate_inp (the router) {n_embd, n_expert}: a router for a
    # different number of experts means llama.cpp fails on the tensor shapes.
    for t in tensors:
        if t.name.endswith(".ffn_gate_inp.weight") and len(t.shape) == 2 and t.shape[1] != n_expert:
            says = f"{n_expert:,} experts" if n_expert else "no experts"
            raise _wrong(f"says it has {says}, but its weights hold {t.shape[1]:,}")


def _check_attention(
    md: dict[str, Any], arch: str, n_embd: int, n_head: int, n_head_kv: int, tensors: list[_Tensor]
) -> None:
    # A zero width makes every weight's shape wrong (llama.cpp then fails on the first tensor).
    if n_embd == 0:
        raise _wrong("says its embedding length is 0")
    if n_head == 0:
        # Recurrent models (mamba, rwkv) have no heads; a model with attention weights needs them.
        if any(t.name.endswith((".attn_q.weight", ".attn_qkv.weight")) for t in tensors):
            raise _wrong("says it has 0 attention heads, but it has attention layers")
        return
    # Per layer where either is an array (llama.cpp: n_head_kv defaults to n_head, a scalar applies
    # to every layer). Arrays hold one entry per layer (_check_layers), so at most 512 steps.
    heads = md.get(f"{arch}.attention.head_count")
    kv_heads = md.get(f"{arch}.attention.head_count_kv", heads)
    n = max(len(v) if isinstance(v, tuple) else 1 for v in (heads, kv_heads))
    per_layer = zip(
        heads if isinstance(heads, tuple) else (n_head,) * n,
        kv_heads if isinstance(kv_heads, tuple) else (n_head_kv,) * n,
    )
    for h, kv in per_layer:
        if not isinstance(h, int) or not isinstance(kv, int):
            continue
        # Grouped-query attention shares each key/value head among n_head / n_head_kv query heads;
        # llama.cpp's n_gqa() divides, and ggml's matrix products assert on a remainder.
        if kv > h:
            raise _wrong(f"says it has {_count(kv, 'key/value head')} but only {_count(h, 'attention head')}")
        if kv and h % kv:
            raise _wrong(f"says its {_count(h, 'attention head')} share {_count(kv, 'key/value head')} unevenly")
    # Without key_length, llama.cpp takes n_embd / n_head as the head size, truncating a remainder.
    if f"{arch}.attention.key_length" not in md and n_embd % n_head:
        raise _wrong(f"says its width of {n_embd:,} splits into {n_head:,} attention heads, which it cannot")
    for key in ("key_length", "value_length"):
        if _int(md.get(f"{arch}.attention.{key}"), -1) == 0:
            raise _wrong("says its attention heads have size 0")


def _check_head_sizes(arch: str, md: dict[str, Any], n_embd: int, n_head: int) -> None:
    """Head sizes llama.cpp's graph and KV cache disagree on abort in ggml's shape asserts
    (GGML_ASSERT(ggml_can_mul_mat(a, b)), (a->ne[0] == b->ne[0]), ...) when the first batch is
    built, after the model loaded."""
    if n_head == 0:
        return

    def size(key: str, default: int) -> int:
        return _int(md.get(f"{arch}.{key}"), default)

    k = size("attention.key_length", n_embd // n_head)
    v = size("attention.value_length", n_embd // n_head)
    rot = size("rope.dimension_count", k)
    swa = (size("attention.key_length_swa", k), size("attention.value_length_swa", v))
    # Sliding-window layers take *_swa head sizes when the file gives them; only Gemma 4 (not in
    # _SWA_PATTERNS) builds its tensors and cache with sizes of their own, every other
    # architecture shapes all layers alike.
    if arch in _SWA_PATTERNS and swa != (k, v):
        raise _wrong(
            f"says its sliding-window layers have heads of size {swa[0]}/{swa[1]} and its other layers {k}/{v}"
        )
    # gpt-oss (openai-moe.cpp) shapes the q/k/v weights by the rotary size and the KV cache by
    # the key and value lengths: all three must agree.
    if arch == "gpt-oss" and not k == v == rot:
        raise _wrong(f"says its attention heads are {k} wide for keys, {v} for values and {rot} for rotary positions")


def _check_sliding_window(arch: str, md: dict[str, Any], n_layers: int, window: int) -> None:
    # These architectures then build a sliding-window KV cache, and llama_model::create_memory
    # asserts GGML_ASSERT(hparams.is_swa_any()): a pattern (e.g. a period of 1) that leaves no
    # layer sliding aborts. Exaone 4 and Llama 4 use the window only in some configurations.
    if arch in _SWA_PATTERNS and arch not in ("exaone4", "llama4") and window > 0:
        if _count_swa_layers(arch, md, n_layers, window) == 0:
            raise _wrong("says it uses a sliding window but its pattern leaves no layer using it")


def _check_rope(arch: str, md: dict[str, Any]) -> None:
    # GGML_ASSERT(hparams.rope_scaling_type_train != LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED)
    scaling = md.get(f"{arch}.rope.scaling.type")
    if isinstance(scaling, str) and scaling not in _ROPE_SCALING_TYPES:
        raise _wrong(f"asks for rope scaling '{_shown(scaling)}', which llama.cpp does not know")


def _check_vocabulary(md: dict[str, Any], tokens: Any) -> None:
    model = md.get("tokenizer.ggml.model")
    # ml.get_key(LLM_KV_TOKENIZER_MODEL, tokenizer_model) is required; an unknown one throws
    # "unknown tokenizer".
    if not isinstance(model, str):
        raise _wrong("does not say which tokenizer it uses")
    if model not in _TOKENIZER_MODELS:
        raise GGUFError(
            f"This model uses a tokenizer ('{_shown(model)}') that this version of llama.cpp does not know."
        )
    if model in ("no_vocab", "none"):
        raise GGUFError("This model file has no vocabulary, so it cannot read or write text.")
    # "cannot find tokenizer vocab in model file"
    if not isinstance(tokens, _StringArray) or not len(tokens):
        raise _wrong("has no vocabulary list")
    n_vocab = len(tokens)
    # "Index out of array bounds for scores / toktypes"
    for key, what in (("tokenizer.ggml.scores", "scores"), ("tokenizer.ggml.token_type", "types")):
        if key not in md:
            continue
        count = _array_len(md[key])
        if count is None:  # "invalid gguf type for tokenizer.ggml.scores"
            raise _wrong(f"stores its token {what} in the wrong form")
        if count < n_vocab:
            raise _wrong(f"gives token {what} for {count:,} of its {n_vocab:,} tokens")
    pre = md.get("tokenizer.ggml.pre", "")
    # "cannot find tokenizer merges in model file" (kimi-k2 is the one BPE without merges)
    if model in ("gpt2", "hybriddna", "whitespace", "gemma4") and pre != "kimi-k2":
        if "tokenizer.ggml.merges" not in md:
            raise _wrong(f"labels its vocabulary byte-pair encoding ('{model}') but has no merges")
    # Out-of-range ids make llama.cpp fall back to a default token (another token of the
    # vocabulary, or none, and then tokenizing with add_bos asserts); Hearth shows these tokens.
    for key, what in (("tokenizer.ggml.bos_token_id", "start"), ("tokenizer.ggml.eos_token_id", "end")):
        token_id = md.get(key)
        if isinstance(token_id, int) and not isinstance(token_id, bool) and token_id >= n_vocab:
            raise _wrong(
                f"says its {what}-of-text token is number {token_id:,}, but its vocabulary has only {n_vocab:,}"
            )
    _check_tokens(model, pre, tokens)


def _check_tokens(model: str, pre: Any, tokens: _StringArray) -> None:
    import numpy as np

    keys = tokens.byte_keys()
    lengths, firsts = keys.lengths, keys.firsts
    # GGML_ASSERT(id_to_token.size() == token_to_id.size()): every token text must be unique as
    # llama.cpp sees it: cut at the first NUL (gguf_get_arr_str returns a C string), and renamed
    # "[EMPTY_<id>]" when that leaves nothing.
    if keys.has_nul:  # rare (and a damaged file): compare them all exactly
        _check_unique([tokens.raw_at(i) for i in range(len(tokens))], range(len(tokens)))
    else:  # compare as bytes only tokens whose hash another shares (a few in 262k real ones)
        present = np.flatnonzero(lengths > 0)
        sorted_hashes = np.sort(keys.hashes[present])
        shared = sorted_hashes[1:][sorted_hashes[1:] == sorted_hashes[:-1]]
        candidates = present[np.isin(keys.hashes[present], shared)] if len(shared) else present[:0]
        renamed = np.flatnonzero(lengths == 0)
        if len(renamed):  # a literal "[EMPTY_<n>]" token could clash with a renamed one
            literal = (lengths >= 9) & ((firsts & np.uint64((1 << 56) - 1)) == _EMPTY_PREFIX)
            candidates = np.union1d(candidates, np.flatnonzero(literal))
        ids = np.union1d(candidates, renamed).tolist()
        _check_unique([tokens.raw_at(i) for i in ids], ids)

    if model == "llama":
        # SentencePiece: llm_tokenizer_spm_session::resegment calls byte_to_token for characters
        # not in the vocabulary, which looks up "<0xXX>", then the byte itself, with
        # unordered_map::at: a missing one throws std::out_of_range through the C API (abort).
        hex_tokens = set(firsts[lengths == 6].tolist())
        single = set(firsts[lengths == 1].tolist()) - {0}  # "\0" is an empty token to llama.cpp
        missing = [
            b for b in _TEXT_BYTES if int.from_bytes(b"<0x%02X>" % b, "little") not in hex_tokens and b not in single
        ]
        if missing:
            raise _wrong(
                "labels its vocabulary SentencePiece ('llama'), but the vocabulary lacks SentencePiece's "
                f"byte tokens (such as '<0x{0x0A if 0x0A in missing else missing[0]:02X}>')"
            )
    elif model == "gpt2" and pre not in _RAW_UTF8_BPE_PRE:
        # Byte-level BPE maps every byte to one of GPT-2's 256 characters before merging, and
        # llm_tokenizer_bpe_session silently drops a byte whose character is not a token. Real
        # vocabularies lack some rare ones (Falcon's control characters, StarCoder's 0xF1), so only
        # the bytes of ordinary text are required; a SentencePiece vocabulary lacks 'Ċ' (newline).
        short = set((firsts[lengths <= 2]).tolist())
        chars = _gpt2_byte_chars()
        missing = [b for b in _PLAIN_TEXT_BYTES if int.from_bytes(chars[b].encode(), "little") not in short]
        if missing:
            raise _wrong(
                "labels its vocabulary byte-level BPE ('gpt2'), but the vocabulary lacks the byte "
                f"characters of plain text (such as '{chars[missing[0]]}' for byte 0x{missing[0]:02X})"
            )


def _check_unique(texts: list[bytes], ids: Iterable[int]) -> None:
    """Raise if two of these tokens are the same text to llama.cpp."""
    seen: set[bytes] = set()
    for text, token_id in zip(texts, ids):
        text = text.split(b"\0", 1)[0] or b"[EMPTY_%d]" % token_id
        if text in seen:
            raise _wrong(f"lists the token '{_shown(text.decode('utf-8', 'replace'))}' twice in its vocabulary")
        seen.add(text)


@functools.cache
def _gpt2_byte_chars() -> tuple[str, ...]:
    """GPT-2's byte -> character map (bytes_to_unicode), which byte-level BPE vocabularies store."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    chars: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return tuple(chars[b] for b in range(256))


def _check_template(template: Any) -> None:
    """llama-cpp-python compiles the file's chat template with Jinja when it loads the model, and a
    syntax error there escapes as a bare exception ("Expected an expression, got 'end of print
    statement'"): say what it is instead."""
    if not isinstance(template, str) or not template:
        return
    if len(template) > _MAX_TEMPLATE:
        raise _wrong(f"has a chat template of {len(template):,} characters, far longer than any real one")
    from app.core.formats.template import template_syntax_error  # imports jinja2 only when needed

    # llama-cpp-python reads the template as a C string: what it compiles ends at the first NUL.
    problem = template_syntax_error(template.split("\0", 1)[0])
    if problem is not None:
        raise _wrong(f"has a chat template with an error ({_shown(problem, 160)})")


def inspect_gguf(path: str | Path, *, checks: bool = True) -> ModelInfo:
    """Validate a GGUF model (all parts of a split one) and describe it; raises GGUFError.
    `checks=False` (tests only) skips the checks of settings llama.cpp would abort on, so that a
    test can prove such a file crashes only the engine process."""
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

    # Settings llama.cpp would abort on, in the order it reads them; the layer count first, since
    # the per-layer checks after it rely on it being at most LLAMA_MAX_LAYERS.
    n_layers = need("block_count")
    if checks:
        _check_layers(arch, md, n_layers)
    n_embd = need("embedding_length")
    n_ctx_train = need("context_length")
    if checks:
        _check_context(n_ctx_train)
    if checks:
        _check_experts(arch, md, tensors)
    n_head = _int(md.get(f"{arch}.attention.head_count"))
    n_head_kv = _int(md.get(f"{arch}.attention.head_count_kv"), n_head)
    if checks:
        _check_attention(md, arch, n_embd, n_head, n_head_kv, tensors)
    if checks:
        _check_head_sizes(arch, md, n_embd, n_head)
    if checks:
        _check_rope(arch, md)
    if checks:
        _check_vocabulary(md, md.get("tokenizer.ggml.tokens"))
    if checks:
        _check_template(md.get("tokenizer.chat_template"))
    fallback_head_dim = n_embd // n_head if n_head else 0
    head_dim_k = _int(md.get(f"{arch}.attention.key_length"), fallback_head_dim)
    head_dim_v = _int(md.get(f"{arch}.attention.value_length"), fallback_head_dim)
    window = _int(md.get(f"{arch}.attention.sliding_window"), _DEFAULT_SWA.get(arch, 0))
    if checks:
        _check_sliding_window(arch, md, n_layers, window)

    tokens = md.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, _StringArray):
        tokens = _StringArray()
    control = _control_tokens(tokens, md.get("tokenizer.ggml.token_type"))
    user_defined = _control_tokens(tokens, md.get("tokenizer.ggml.token_type"), (_TOKEN_USER_DEFINED,))
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
        # Shown in the window's header and lists: a damaged file's "name" may be megabytes of anything.
        name=_shown(name.strip(), 200) if isinstance(name, str) and name.strip() else _display_stem(path),
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
        user_defined_tokens=user_defined,
        file_type=_file_type_label(md, tensors),
        tensor_bytes=sum(t.nbytes for t in tensors),
        output_tensor_bytes=sum(t.nbytes for t in tensors if t.name in output_names),
        repacked_bytes=sum(t.nbytes for t in tensors if _repacked(t)),
        split_paths=tuple(p.path for p in parts) if len(parts) > 1 else (),
        n_tensors=len(tensors),
        finetune=str(md.get("general.finetune", "") or ""),
        tokenizer_model=str(md.get("tokenizer.ggml.model", "")),
    )


def _display_stem(path: Path) -> str:
    m = _SPLIT_NAME.match(path.name)
    return m.group("prefix") if m else path.stem
