"""The llama.cpp session: load with a LoadPlan, stream a reply as events, cancel, reuse the prefix.

One Engine holds one model. It runs inside the engine process (`child.py`), which the app's
process starts and owns; benchmarks use it directly as "bare llama.cpp plus our formats". It is
used from one thread at a time; `cancel()` may be called from any thread and takes effect within
one token, or — thanks to llama.cpp's abort callback — in the middle of evaluating a long prompt.
"""

from __future__ import annotations

import codecs
import ctypes
import datetime as _dt
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from app.core import planner as _planner
from app.core.engine import kvcache
from app.core.engine.types import (
    ContextOverflowError,
    EngineBusyError,
    EngineError,
    GenerateRequest,
    LoadResult,
    Sampling,
    default_sampling,
    engine_label,
)
from app.core.formats import format_for
from app.core.formats.base import (
    ChatFormat,
    Conversation,
    Done,
    Event,
    GenerationStats,
    Message,
    RenderOptions,
    ToolCallEvent,
)
from app.core.formats.guard import guard_for_model
from app.core.formats.stops import StopMatcher
from app.core.formats.tool_guard import guard_conversation
from app.core.gguf_file import ModelInfo, inspect_gguf
from app.core.hardware import HardwareProfile
from app.core.planner import LoadPlan

log = logging.getLogger("hearth.engine")

__all__ = ["ContextOverflowError", "Engine", "EngineBusyError", "EngineError", "PreparedPrompt", "render_prompt"]


@dataclass(frozen=True)
class PreparedPrompt:
    text: str
    tokens: list[int]
    dropped_turns: int


def render_prompt(info: ModelInfo, fmt: ChatFormat, conv: Conversation, effort: str, date: str | None) -> str:
    """The exact prompt text for a conversation, with user text and tools neutralised (see guard.py
    and tool_guard.py)."""
    guarded = guard_conversation(guard_for_model(info, fmt), conv)
    options = RenderOptions(effort=effort, date=date or _dt.date.today().isoformat())  # type: ignore[arg-type]
    return fmt.render(guarded, options)


def _turn_starts(messages: tuple[Message, ...]) -> list[int]:
    """Indices where a droppable turn begins: each user message after the leading system ones."""
    return [i for i, m in enumerate(messages) if m.role == "user"]


class Engine:
    def __init__(
        self, *, native_log: bool = False, kv_dir: Path | None = None, kv_cap: int = kvcache.DEFAULT_CAP_BYTES
    ) -> None:
        """`native_log`: let llama.cpp write its log to stderr (the engine process, whose stderr the
        app reads); otherwise llama-cpp-python silences it. `kv_dir`: where KV states are saved per
        session (see kvcache; None: not saved), at most `kv_cap` bytes of them."""
        self._native_log = native_log
        self._kv_dir, self._kv_cap = kv_dir, kv_cap
        self._kv_key = ""
        self._session: str | None = None  # whose tokens the KV cache holds
        self._session_dirty = False  # changed since it was saved or restored
        self._restored = 0  # tokens the current session got from disk, for the next reply's stats
        self._llm: Any = None
        self._info: ModelInfo | None = None
        self._plan: LoadPlan | None = None
        self._format: ChatFormat | None = None
        self._busy = threading.Lock()
        # The cancel event of the generation that is running (None when none is).
        self._job_cancel: threading.Event | None = None
        self._sampling = Sampling()
        self._eog: set[int] = set()
        self._pieces: dict[int, bytes] = {}  # what each generated token shows (control tokens: nothing)
        # Kept alive for as long as llama.cpp holds a pointer to it.
        self._abort_cb: Any = None

    # ---- loading --------------------------------------------------------------------------

    @property
    def info(self) -> ModelInfo | None:
        return self._info

    @property
    def plan(self) -> LoadPlan | None:
        return self._plan

    @property
    def chat_format(self) -> ChatFormat | None:
        return self._format

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    def load(
        self,
        model: str | Path | ModelInfo,
        hardware: HardwareProfile | None = None,
        plan: LoadPlan | None = None,
        ctx_cap: int | None = None,
    ) -> LoadResult:
        """Validate, plan and load a model; on a failed load step the plan down and retry."""
        info = model if isinstance(model, ModelInfo) else inspect_gguf(model)
        if plan is None:
            from app.core.hardware import probe

            hardware = hardware or probe(info.path.parent)
            plan = _planner.plan_load(hardware, info, ctx_cap=ctx_cap)
        if not plan.fits:
            raise EngineError(plan.reason)
        self.unload()
        notices: list[str] = []
        started = time.perf_counter()
        while True:
            try:
                self._llm = _open_llama(info, plan, verbose=self._native_log)
                break
            except (ValueError, RuntimeError, MemoryError) as exc:
                smaller = _planner.step_down(plan, hardware, info) if hardware is not None else None
                if smaller is None:
                    raise EngineError(f"llama.cpp could not load {info.name}: {exc}") from exc
                notices.append(smaller.reason)
                plan = smaller
        _warm_up(self._llm, plan)
        self._info, self._plan, self._format = info, plan, format_for(info)
        self._sampling = default_sampling(info)
        self._eog = _end_of_generation_tokens(self._llm, self._format)
        self._pieces = {}
        self._install_abort_callback()
        self._session, self._session_dirty = None, False
        self._kv_key = self._state_key(info, plan) if self._kv_dir is not None else ""
        return LoadResult(info, plan, time.perf_counter() - started, notices, engine_label(plan))

    def unload(self) -> None:
        if self._llm is not None:
            with self._busy:
                self._save_session()
                self._llm.close()
                self._llm = None
                self._info = self._plan = self._format = None

    # ---- KV state per session ---------------------------------------------------------------

    @staticmethod
    def _state_key(info: ModelInfo, plan: LoadPlan) -> str:
        import os

        import llama_cpp

        shape = {k: getattr(plan, k) for k in ("n_ctx", "n_batch", "n_ubatch", "n_gpu_layers", "flash_attn",
                                               "type_k", "type_v", "swa_full")}  # fmt: skip
        system = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace")
        build = f"{llama_cpp.__version__}|{os.environ.get('LLAMA_CPP_LIB_PATH', '')}|{system}"
        try:
            fingerprint = kvcache.model_fingerprint(info.path)
        except OSError:
            return ""
        return kvcache.state_key(fingerprint, shape, build)

    def save_session(self) -> None:
        """Save the current session's KV state now (when the app switches to another chat)."""
        with self._busy:
            self._save_session()

    def open_session(self, session: str) -> None:
        """The app opened this session's conversation: bring its saved KV state back now, while the
        user reads and types, so that the next reply starts from it. Skipped while a reply runs
        (that reply's session is the one in memory; the next request switches as usual)."""
        if self._llm is None or not self._busy.acquire(blocking=False):
            return
        try:
            self._switch_session(session)
        finally:
            self._busy.release()

    def _save_session(self) -> None:
        import llama_cpp

        llm, session = self._llm, self._session
        if llm is None or session is None or not self._kv_key or not self._session_dirty or self._kv_dir is None:
            return
        n = int(llm.n_tokens)
        if n < kvcache.MIN_TOKENS:
            return
        started = time.perf_counter()
        # The whole context's state, not sequence 0's (`llama_state_seq_get_data`), although Hearth
        # uses one sequence: llama.cpp leaves a sequence's sliding-window cells outside the window
        # out of a sequence state, and restores the rest from cell 0. The restored cache then held
        # other cells than the live one (Gemma 3: positions 440-951 where the live cache held 0-951),
        # so the next reply was not token for token the live one's (1 of 5 prompts differed), and a
        # rollback to before the window (an edited earlier message) would have attended over cells
        # that were gone. The whole state keeps every cell in place: 1.6-3.5x the bytes on Gemma 3
        # (937 and 3,641 tokens, docs/PERFORMANCE.md).
        size = llama_cpp.llama_state_get_size(llm._ctx.ctx)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_get_data(llm._ctx.ctx, buffer, size)
        if not 0 < written <= size:
            return
        path = kvcache.session_path(self._kv_key, session, self._kv_dir)
        try:
            on_disk = kvcache.write_state(path, self._kv_key, [int(t) for t in llm.input_ids[:n]],
                                          memoryview(buffer)[:written])  # fmt: skip
            kvcache.enforce_cap(self._kv_cap, self._kv_dir, keep=path)
        except OSError as exc:  # a full or read-only disk: the chat goes on without it
            log.warning("could not save the KV state of %s: %s", session, exc)
            return
        self._session_dirty = False
        log.info("saved %s tokens of %s's KV state (%.1f MB) in %.2f s", n, session, on_disk / 1e6,
                 time.perf_counter() - started)  # fmt: skip

    def _switch_session(self, session: str | None) -> None:
        """Before a reply for `session` (or when it is opened): keep the KV of the session it held,
        bring back this one's."""
        if session == self._session:
            return  # `_restored` stays: tokens restored when it was opened count for its next reply
        self._restored = 0
        self._save_session()
        self._session, self._session_dirty = session, False
        if session is None or not self._kv_key or self._kv_dir is None:
            return
        llm = self._llm
        saved = kvcache.read_state(kvcache.session_path(self._kv_key, session, self._kv_dir), self._kv_key,
                                   llm.n_ctx())  # fmt: skip
        if saved is None:
            return
        started = time.perf_counter()
        llm.reset()
        llm._ctx.kv_cache_clear()
        if not _restore_state(llm, self._info.architecture if self._info else "", saved.data):
            llm._ctx.kv_cache_clear()
            kvcache.session_path(self._kv_key, session, self._kv_dir).unlink(missing_ok=True)
            log.warning("llama.cpp refused the saved KV state of %s; evaluating it again", session)
            return
        n = len(saved.tokens)
        llm.input_ids[:n] = saved.tokens
        llm.n_tokens = n
        llm._requires_eval = True  # the logits are not in the state: re-evaluate the last token
        self._restored = n
        log.info("restored %s tokens of %s's KV state in %.2f s", n, session, time.perf_counter() - started)

    def _install_abort_callback(self) -> None:
        import llama_cpp

        def should_abort(_data: ctypes.c_void_p) -> bool:
            job = self._job_cancel
            return job is not None and job.is_set()

        self._abort_cb = llama_cpp.ggml_abort_callback(should_abort)
        llama_cpp.llama_set_abort_callback(self._llm._ctx.ctx, self._abort_cb, None)

    # ---- prompts --------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        llm = self._require()
        bos = self._info.bos_token if self._info else ""
        # A template that writes its own BOS must not get llama.cpp's automatic one as well.
        add_bos = not (bos and text.startswith(bos))
        tokens: list[int] = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
        return tokens

    def prepare(self, request: GenerateRequest, reserve: int | None = None) -> PreparedPrompt:
        """Render and tokenize; drop the oldest turns while the prompt does not fit."""
        _llm, info, fmt, plan = self._require(), self._info, self._format, self._plan
        assert info is not None and fmt is not None and plan is not None
        n_ctx = plan.n_ctx
        room = reserve if reserve is not None else min(request.max_tokens or 2048, n_ctx // 4)
        limit = n_ctx - room
        messages = request.conversation.messages
        starts = _turn_starts(messages)
        # Droppable: every turn but the one holding the new (last) user message.
        droppable = [i for i in starts if i < (starts[-1] if starts else len(messages))]
        head = tuple(m for m in messages[: starts[0]]) if starts else messages

        def attempt(dropped: int) -> PreparedPrompt:
            cut = droppable[dropped] if dropped < len(droppable) else (starts[-1] if starts else 0)
            conv = replace(request.conversation, messages=head + messages[cut:]) if dropped else request.conversation
            text = render_prompt(info, fmt, conv, request.effort, request.date)
            return PreparedPrompt(text, self.tokenize(text), dropped)

        best = attempt(0)
        if len(best.tokens) <= limit:
            return best
        # Binary search for the fewest dropped turns that fit (prompt length falls as turns go).
        lo, hi = 1, len(droppable)
        smallest = attempt(hi)
        if len(smallest.tokens) > limit:
            raise ContextOverflowError(
                f"This message is about {len(smallest.tokens):,} tokens long, but {info.name} is loaded "
                f"with a {n_ctx:,}-token context and needs {room:,} tokens of room for the reply; "
                "shorten the message or load the model with a larger context."
            )
        while lo < hi:
            mid = (lo + hi) // 2
            if len(attempt(mid).tokens) <= limit:
                hi = mid
            else:
                lo = mid + 1
        return attempt(lo)

    # ---- generation -----------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the running generation (from any thread); no effect when none runs. To stop a
        generation that may not have started yet, pass it a `cancel` event instead."""
        job = self._job_cancel
        if job is not None:
            job.set()

    def generate(self, request: GenerateRequest, cancel: threading.Event | None = None) -> Iterator[Event]:
        """Stream a reply: parsed events, then one Done with stats. Problems with the request
        (busy, no model, context overflow) raise EngineError from the first `next()`, before any
        event. `cancel`, when given, belongs to this one generation: setting it at any time —
        even before the generation starts — stops it (as 'cancelled')."""
        return self._stream(request, cancel or threading.Event())

    def _stream(self, request: GenerateRequest, cancel: threading.Event) -> Iterator[Event]:
        # The busy lock is taken when iteration begins, not when generate() is called: a stream
        # that is created and never iterated holds nothing, and one abandoned half-way releases
        # the lock when it is closed or collected.
        if not self._busy.acquire(blocking=False):
            raise EngineBusyError("A reply is already being generated; stop it first.")
        self._job_cancel = cancel
        try:
            llm, info, fmt = self._require(), self._info, self._format
            assert info is not None and fmt is not None
            asked = time.perf_counter()  # time to first token counts the state's restore too
            self._switch_session(request.session)
            prepared = self.prepare(request)
            yield from self._run(llm, info, fmt, request, prepared, cancel, asked)
        finally:
            self._job_cancel = None
            self._busy.release()

    def _run(
        self,
        llm: Any,
        info: ModelInfo,
        fmt: ChatFormat,
        request: GenerateRequest,
        prepared: PreparedPrompt,
        cancel: threading.Event,
        started: float,
    ) -> Iterator[Event]:
        sampling = request.sampling or self._sampling
        tokens = prepared.tokens
        n_ctx = llm.n_ctx()
        cached = _common_prefix(llm, tokens)
        if cached and not _prefix_still_in_cache(llm, info, self._plan, cached):
            llm.reset()  # the next eval clears the whole cache and starts over
            cached = 0
        # llama-cpp-python re-evaluates the last prompt token when the whole prompt is cached.
        evaluated = len(tokens) - min(cached, len(tokens) - 1)
        restored, self._restored = min(self._restored, cached), 0
        self._session_dirty = True
        if sampling.seed is not None:
            llm.set_seed(sampling.seed)
        else:
            llm.set_seed(int.from_bytes(_random_bytes(4), "little"))
        parser = fmt.new_parser()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopMatcher(() if request.ignore_eos else (*fmt.stop_strings, *request.stop))
        max_new = request.max_tokens or n_ctx
        grammar = _grammar(request.grammar) if request.grammar else None
        generated = 0
        called = False  # the parser produced a tool call (a template model's ends like an answer)
        first_at = last_at = 0.0
        stop_reason, error = "stop", None
        gen = llm.generate(
            tokens,
            temp=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            min_p=sampling.min_p,
            repeat_penalty=sampling.repeat_penalty,
            reset=True,
            grammar=grammar,
        )
        try:
            for token in gen:
                now = time.perf_counter()
                if not first_at:
                    first_at = now
                if cancel.is_set():
                    stop_reason = "cancelled"
                    break
                if token in self._eog and not request.ignore_eos:
                    stop_reason = "tool_call" if _piece(llm, token) == "<|call|>" else "stop"
                    break
                generated += 1
                last_at = now
                text = stops.feed(decoder.decode(self._shown_piece(llm, fmt, token)))
                if text:
                    for event in parser.feed(text):
                        called = called or isinstance(event, ToolCallEvent)
                        yield event
                if stops.matched is not None:
                    stop_reason = "tool_call" if stops.matched == "<|call|>" else "stop"
                    break
                if generated >= max_new:
                    stop_reason = "length"
                    break
                if llm.n_tokens + 1 >= n_ctx:
                    stop_reason = "length"
                    break
        except RuntimeError as exc:
            # llama_decode returns 2 when our abort callback stopped it (cancel mid-prompt).
            if cancel.is_set():
                stop_reason = "cancelled"
            else:
                detail = str(exc).strip().rstrip(".") or type(exc).__name__
                stop_reason, error = (
                    "error",
                    f"llama.cpp failed while generating ({detail}); the model file may be damaged.",
                )
        finally:
            gen.close()
        rest = "" if stops.matched is not None else stops.feed(decoder.decode(b"", final=True)) + stops.flush()
        for event in (*parser.feed(rest), *parser.finish()):
            called = called or isinstance(event, ToolCallEvent)
            yield event
        if called and stop_reason == "stop":
            stop_reason = "tool_call"
        gen_s = max(last_at - first_at, 0.0)
        stats = GenerationStats(
            prompt_tokens=len(tokens),
            prompt_tokens_evaluated=evaluated,
            generated_tokens=generated,
            time_to_first_token_s=(first_at - started) if first_at else time.perf_counter() - started,
            generation_s=gen_s,
            tokens_per_s=(generated - 1) / gen_s if generated > 1 and gen_s > 0 else 0.0,
            dropped_turns=prepared.dropped_turns,
            prompt_tokens_restored=restored,
        )
        yield Done(stats, stop_reason, error)

    def _shown_piece(self, llm: Any, fmt: Any, token: int) -> bytes:
        """The bytes a generated token adds to the reply. A control token (its text exists only
        with special=True: gpt-oss's `<|reserved_272|>`, Gemma's `<unused5>`) adds nothing unless
        the format reads it (harmony's markers, a stop string, a think tag): such tokens are never
        shown as text. Cached per token for the loaded model."""
        piece = self._pieces.get(token)
        if piece is None:
            piece = llm.detokenize([token], special=True)
            if piece and piece != llm.detokenize([token], special=False):
                if piece.decode("utf-8", errors="replace") not in _format_markers(fmt):
                    piece = b""
            self._pieces[token] = piece
        return piece

    def _require(self) -> Any:
        if self._llm is None:
            raise EngineError("No model is loaded.")
        return self._llm


def _common_prefix(llm: Any, tokens: list[int]) -> int:
    cached = llm.input_ids[: llm.n_tokens]
    n = 0
    for a, b in zip(cached, tokens):
        if a != b:
            break
        n += 1
    return n


def _restore_state(llm: Any, architecture: str, state: bytearray) -> bool:
    """Put a whole-context state (`llama_state_get_data`) back into an emptied cache, every cell
    where it was and llama.cpp's search head after the last one, as in the live cache it was saved
    from. A whole-context restore (`llama_state_set_data`) leaves the head at cell 0, so the next
    tokens of a sliding-window cache go into the front cells the window has left behind, where the
    live cache puts them after the prefix; the attention then meets the same cells in another
    order. The whole state is the model's architecture name (a u32 length and its bytes) followed
    by the memory's state for every sequence; a sequence state is a header (llama.cpp's magic and
    the sequence id) followed by the same memory layout. Given that header, llama.cpp reads the
    memory back as sequence 0's (Hearth's only sequence) and places the cells through its slot
    search, which moves the head. The header is taken from llama.cpp itself (the empty sequence's
    state) and written over the end of the name in `state`, in place. Where any of this is not
    what llama.cpp reads back, the whole-context restore is the fallback."""
    import llama_cpp

    ctx = llm._ctx.ctx
    name = architecture.encode("utf-8")
    body = 4 + len(name)  # where the memory's state starts
    header = (ctypes.c_uint8 * 64)()
    named = 8 <= body < len(state) and state[:body] == len(name).to_bytes(4, "little") + name
    if named and llama_cpp.llama_state_seq_get_size(ctx, 0) <= len(header):
        if llama_cpp.llama_state_seq_get_data(ctx, header, len(header), 0) >= 8:
            state[body - 8 : body] = bytes(header)[:8]
            size = len(state) - body + 8
            memory = (ctypes.c_uint8 * size).from_buffer(state, body - 8)
            if llama_cpp.llama_state_seq_set_data(ctx, memory, size, 0) == size:
                return True
            llm._ctx.kv_cache_clear()
            state[:body] = len(name).to_bytes(4, "little") + name  # as it was, for the fallback
    whole = (ctypes.c_uint8 * len(state)).from_buffer(state)
    return bool(llama_cpp.llama_state_set_data(ctx, whole, len(state)) != 0)


def _prefix_still_in_cache(llm: Any, info: ModelInfo, plan: LoadPlan | None, prefix: int) -> bool:
    """Whether the cache can resume after `prefix` tokens. A sliding-window cache that is not
    full-size recycles the cells of old positions, and resuming anywhere before the cache's end
    changed the output on Gemma 3 (same seed, different reply) even where llama.cpp reported the
    window's positions present; so only a full-size cache (the planner's choice) is rolled back."""
    if not info.sliding_window or prefix >= llm.n_tokens:
        return True
    if plan is None or not plan.swa_full:
        return False
    # Full-size, but the positions the window needs must really be there (a sequence state restored
    # by llama.cpp keeps only the window; `_save_session` saves the whole context for this reason).
    import llama_cpp

    lowest = llama_cpp.llama_memory_seq_pos_min(llama_cpp.llama_get_memory(llm._ctx.ctx), 0)
    return 0 <= lowest <= max(0, prefix - info.sliding_window)


def _grammar(text: str) -> Any:
    import llama_cpp

    try:
        return llama_cpp.LlamaGrammar.from_string(text, verbose=False)
    except ValueError as exc:
        raise EngineError(f"The grammar for this reply is not valid GBNF: {exc}") from None


def _format_markers(fmt: Any) -> frozenset[str]:
    """The control texts a format's parser or stop matcher reads from the generated text."""
    # The tool-call tags of Qwen-style templates are control tokens in some vocabularies: the
    # tool-tag parser reads them.
    kept = {*getattr(fmt, "stop_strings", ()), "<think>", "</think>", "<tool_call>", "</tool_call>"}
    if getattr(fmt, "name", "") == "harmony":
        from app.core.formats.harmony import harmony_control_markers

        kept.update(harmony_control_markers())
    return frozenset(kept)


def _piece(llm: Any, token: int) -> str:
    return llm.detokenize([token], special=True).decode("utf-8", errors="replace")


def _random_bytes(n: int) -> bytes:
    import os

    return os.urandom(n)


def _end_of_generation_tokens(llm: Any, fmt: ChatFormat) -> set[int]:
    """Tokens that end a reply: llama.cpp's end-of-generation set plus the format's stop markers."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    # One pass over the vocabulary at load time (~0.1 s for 262k tokens), none per token later.
    eog = {t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)}
    eog.add(llm.token_eos())
    for stop in fmt.stop_strings:
        ids = llm.tokenize(stop.encode("utf-8"), add_bos=False, special=True)
        if len(ids) == 1:
            eog.add(ids[0])
    return {t for t in eog if t >= 0}


def _warm_up(llm: Any, plan: LoadPlan) -> None:
    """One decode of one token at load time, as llama.cpp's own tools do: the first real decode of a
    fresh process would otherwise pay for creating the thread pool, touching the compute buffers and
    (with mmap) faulting in the weights; a reopened chat's first token would carry that cost. With
    mmap, llama.cpp's warm-up mode also runs every expert of a mixture-of-experts model once, so all
    of its pages are in. The cache is cleared after."""
    import llama_cpp

    ctx = llm._ctx.ctx
    token = llm.token_bos()
    if token < 0:
        token = llm.token_eos()
    if token < 0:
        return
    warm_mode = plan.use_mmap
    try:
        if warm_mode:
            llama_cpp.llama_set_warmup(ctx, True)
        llm.eval([token])
    except RuntimeError as exc:  # a decode that fails here fails in the first reply too, with a sentence
        log.info("the warm-up decode failed: %s", exc)
    finally:
        if warm_mode:
            llama_cpp.llama_set_warmup(ctx, False)
        llm.reset()
        llm._ctx.kv_cache_clear()
        llama_cpp.llama_perf_context_reset(ctx)


def _open_llama(info: ModelInfo, plan: LoadPlan, *, verbose: bool = False) -> Any:
    import llama_cpp

    kv_types = {"f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0, "f32": llama_cpp.GGML_TYPE_F32}
    return llama_cpp.Llama(
        str(info.path),
        n_gpu_layers=plan.n_gpu_layers,
        n_ctx=plan.n_ctx,
        n_batch=plan.n_batch,
        n_ubatch=plan.n_ubatch,
        n_threads=plan.n_threads,
        n_threads_batch=plan.n_threads_batch,
        flash_attn=plan.flash_attn,
        type_k=kv_types[plan.type_k],
        type_v=kv_types[plan.type_v],
        use_mmap=plan.use_mmap,
        swa_full=plan.swa_full if info.sliding_window else None,
        # verbose=False would also point stderr at /dev/null while loading, hiding the message of a
        # GGML_ASSERT that aborts the process; the engine process keeps it for the app to quote.
        verbose=verbose,
    )
