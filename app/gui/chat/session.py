"""The open conversation: send, stop, regenerate, edit and resend, switch conversation or
alternative; ties the store, the engine thread and the chat view together. Runs on the GUI thread;
every slow thing it starts (tokenizing, generating, saving the streamed reply) happens elsewhere.

Regenerate and Edit never delete: a regenerated reply is a new alternative of the old one (the
store's branch is rewound to the question first, so the prompt ends there), an edited message a
new alternative of the old message; "‹ 2/3 ›" switches between them (`switch_alternative`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QGuiApplication

from app.core.store import ChatStore, StoreError, Thread
from app.core.store import Conversation as StoredConversation
from app.gui.chat.composer import Composer
from app.gui.chat.messages import AssistantMessageWidget, UserMessageWidget
from app.gui.chat.pacing import FramePacer
from app.gui.chat.view import ChatView, MessageWidget
from app.gui.workers import EngineController

if TYPE_CHECKING:
    from app.core.chat.service import ReplyOutcome, ToolCallUpdate
    from app.core.engine import Sampling
    from app.core.formats.base import ParsedEvent
    from app.core.store import ToolCall
    from app.core.tools.approval import Approvals
    from app.core.tools.registry import ToolRegistry

TITLE_CHARS = 60


def title_for(text: str) -> str:
    first = " ".join(text.strip().split("\n", 1)[0].split())
    return first if len(first) <= TITLE_CHARS else first[: TITLE_CHARS - 1].rstrip() + "…"


@dataclass
class ActiveReply:
    job_id: int
    conversation_id: int
    message_id: int
    widget: AssistantMessageWidget | None  # None once the user left the conversation


class ChatSession(QObject):
    streamingChanged = Signal()  # read `streaming`
    conversationChanged = Signal(object)  # StoredConversation | None
    conversationsChanged = Signal()  # titles or order changed: the sidebar refreshes
    replyFinished = Signal(object)  # ReplyOutcome
    errorOccurred = Signal(str)
    modelNeeded = Signal()  # a reply was asked for with no model ready

    def __init__(
        self,
        store: ChatStore,
        engine: EngineController,
        view: ChatView,
        composer: Composer,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.engine = engine
        self.view = view
        self.composer = composer
        self.conversation: StoredConversation | None = None
        self.branch: Thread | None = None
        self.model_name: str | None = None  # the loaded model's name (stored with each reply)
        self.model_key: str | None = None  # what the window's picker knows it by (stored per chat)
        self.max_tokens: int | None = None  # an override (benchmarks, tests); None: the settings'
        self.sampling: Sampling | None = None  # an override; None: the model settings'
        # What the model settings (this chat's, else the defaults) ask for; None: the model's own.
        self.options_sampling: Sampling | None = None
        self.options_max_tokens: int | None = None
        self.draft_effort = "medium"
        self.draft_system_prompt = ""
        self.draft_options: dict[str, object] = {}  # a new chat's model settings until it is saved
        self._active: ActiveReply | None = None
        self._detached: dict[int, ActiveReply] = {}  # stopped replies still finishing
        # Tools: the registry and approvals the window gives (None: no tools at all); the tools a
        # new chat starts with; the stored calls of the open conversation's branch, by message.
        self._registry: ToolRegistry | None = None
        self.approvals: Approvals | None = None
        # Makes (registry, approvals) on first use (after the first frame: the tools' imports
        # are not start-up's to pay); None: this session offers no tools.
        self.tools_factory: Callable[[], tuple[ToolRegistry, Approvals]] | None = None
        self.draft_tools: list[str] | None = None
        self._calls: dict[int, list[ToolCall]] = {}
        # The streaming reply is drawn at the pacer's rate, not at every batch (see pacing.py).
        self._pacer = FramePacer(self._draw_reply, parent=self)
        engine.events.connect(self._on_events)
        engine.finished.connect(self._on_finished)
        engine.toolCall.connect(self._on_tool_call)
        engine.replyNotice.connect(self._on_reply_notice)
        view.messageBuilt.connect(self._wire)
        view.owns_reply = lambda message_id: any(a.message_id == message_id for a in self._detached.values())
        composer.sendRequested.connect(self.send)
        composer.stopRequested.connect(self.stop)

    # -- state --------------------------------------------------------------------------------

    @property
    def streaming(self) -> bool:
        return self._active is not None

    @property
    def frames_drawn(self) -> int:
        """How many times a streaming reply has been drawn (benchmarks report the rate)."""
        return self._pacer.frames

    @property
    def frame_budget(self) -> float:
        return self._pacer.budget

    def set_frame_budget(self, budget: float) -> None:
        """The share of one core drawing a streaming reply may take (see pacing.budget_for)."""
        self._pacer.set_budget(budget)

    @property
    def effort(self) -> str:
        return self.conversation.effort if self.conversation else self.draft_effort

    @property
    def system_prompt(self) -> str:
        return self.conversation.system_prompt if self.conversation else self.draft_system_prompt

    # -- switching ----------------------------------------------------------------------------

    def open(self, conversation_id: int | None) -> None:
        """Show a stored conversation (None: a new, empty chat). A streaming reply is stopped
        and kept, marked as stopped."""
        if self.conversation is not None and self.conversation.id == conversation_id and not self.streaming:
            return
        if self.conversation is not None:
            self.engine.leave_conversation()
        self._detach()
        self.composer.cancel_edit()
        if conversation_id is None:
            self.conversation, self.branch = None, None
            self.view.clear()
        else:
            try:
                conversation = self.store.get_conversation(conversation_id)
                thread = self.store.thread(conversation_id) if conversation else Thread([], {})
            except StoreError as exc:
                self.errorOccurred.emit(str(exc))
                return
            self.conversation, self.branch = conversation, thread
            self._load_calls(thread)
            self.view.show_messages(thread.messages, thread)
            if conversation is not None:
                self.engine.enter_conversation(conversation.id)
        self.view.refresh_actions()
        self.conversationChanged.emit(self.conversation)

    def new_chat(self) -> None:
        self.open(None)

    def reload(self) -> None:
        """Show the open conversation again from the store."""
        if self.conversation is not None and not self.streaming:
            conversation_id, self.conversation = self.conversation.id, None
            self.open(conversation_id)

    def _load_calls(self, thread: Thread) -> None:
        try:
            self._calls = self.store.tool_calls([m.id for m in thread.messages if m.role == "assistant"])
        except StoreError as exc:
            self._calls = {}
            self.errorOccurred.emit(str(exc))

    # -- tools of the open conversation --------------------------------------------------------

    @property
    def registry(self) -> ToolRegistry | None:
        if self._registry is None and self.tools_factory is not None:
            self._registry, self.approvals = self.tools_factory()
        return self._registry

    @registry.setter
    def registry(self, registry: ToolRegistry | None) -> None:
        self._registry = registry

    def tool_entries(self) -> list[tuple[str, str]]:
        """(selector, label) for the per-chat tools menu: each built-in tool, each MCP server."""
        registry = self.registry
        if registry is None:
            return []
        entries = [(spec.key, spec.tool.capitalize()) for spec, _run in registry.builtin()]
        entries += [(f"{name}/*", f"{name} (MCP)") for name in registry.servers()]
        return entries

    def chat_tools(self) -> list[str]:
        """The tools the open chat offers ("server/tool" or "server/*" selectors)."""
        if self.registry is None:
            return []
        chosen = self.store.conversation_tools(self.conversation.id) if self.conversation else self.draft_tools
        return list(self.registry.default_selectors if chosen is None else chosen)

    def set_chat_tools(self, selectors: list[str]) -> None:
        if self.conversation is None:
            self.draft_tools = list(selectors)
            return
        try:
            self.store.set_conversation_tools(self.conversation.id, list(selectors))
        except StoreError as exc:
            self.errorOccurred.emit(str(exc))

    def decide(self, message_id: int, call_id: str, decision: str) -> None:
        active = self._active
        if active is not None and active.message_id == message_id:
            self.engine.decide(active.job_id, call_id, decision)
            self.composer.set_hint(None)

    def _on_tool_call(self, update: ToolCallUpdate) -> None:
        active = self._active
        if active is None or active.job_id != update.job_id or active.widget is None:
            return
        self._pacer.flush()
        active.widget.show_tool_call(
            update.call, needs_approval=update.needs_approval, ask_every_time=update.ask_every_time
        )
        if update.needs_approval:
            self.composer.set_hint("Waiting for your approval")
        self.view.scroll_to_bottom()

    def _on_reply_notice(self, job_id: int, text: str) -> None:
        active = self._active
        if active is not None and active.job_id == job_id and active.widget is not None:
            active.widget.add_notice(text)

    def _refresh_thread(self) -> None:
        if self.conversation is None:
            return
        try:
            self.branch = self.store.thread(self.conversation.id)
        except StoreError as exc:
            self.errorOccurred.emit(str(exc))
            return
        self.view.set_thread(self.branch)

    def _detach(self) -> None:
        if self._active is not None:
            self.engine.cancel(self._active.job_id)
            self._pacer.cancel()
            self._active.widget = None
            self._detached[self._active.job_id] = self._active
            self._active = None
            self._set_streaming(False)

    # -- settings of the open conversation ----------------------------------------------------

    def set_effort(self, effort: str) -> None:
        self.draft_effort = effort  # new chats start from the last choice
        if self.conversation is None:
            return
        try:
            self.conversation = self.store.update_conversation(self.conversation.id, effort=effort)
        except StoreError as exc:
            self.errorOccurred.emit(str(exc))

    def set_system_prompt(self, text: str) -> None:
        if self.conversation is None:
            self.draft_system_prompt = text
            return
        try:
            self.conversation = self.store.update_conversation(self.conversation.id, system_prompt=text)
        except StoreError as exc:
            self.errorOccurred.emit(str(exc))

    @property
    def options(self) -> dict[str, object]:
        """This chat's own model settings (a new chat's until it is saved)."""
        return dict(self.conversation.options) if self.conversation else dict(self.draft_options)

    def set_options(self, options: dict[str, object]) -> None:
        if self.conversation is None:
            self.draft_options = dict(options)
            return
        try:
            self.conversation = self.store.update_conversation(self.conversation.id, options=dict(options))
        except StoreError as exc:
            self.errorOccurred.emit(str(exc))

    # -- sending ------------------------------------------------------------------------------

    @property
    def model_ready(self) -> bool:
        return self.model_name is not None

    def send(self, text: str) -> None:
        if self.streaming or not text.strip():
            return
        if not self.model_ready:
            self.composer.set_text(text)  # nothing typed is lost; the window offers a model
            self.modelNeeded.emit()
            return
        try:
            editing = self.composer.editing
            parent: dict[str, int | None] = {}
            if editing is not None and self.conversation is not None:
                edited = self.store.get_message(editing)
                if edited is not None:
                    parent["parent_id"] = edited.parent_id  # a new alternative of the edited message
                self.view.remove_from(editing)
                self.composer.end_edit()
            if self.conversation is None:
                self.conversation = self.store.create_conversation(
                    title_for(text),
                    system_prompt=self.draft_system_prompt,
                    model=self.model_key,
                    effort=self.draft_effort,
                    options=dict(self.draft_options),
                )
                self.conversationChanged.emit(self.conversation)
            elif self.model_key and self.conversation.model != self.model_key:
                self.conversation = self.store.update_conversation(self.conversation.id, model=self.model_key)
            message = self.store.add_message(self.conversation.id, "user", text, **parent)  # type: ignore[arg-type]
        except StoreError as exc:
            self.composer.set_text(text)  # nothing typed is lost
            self.errorOccurred.emit(str(exc))
            return
        self.view.add_user(message.id, text)
        self.view.scroll_to_bottom()
        self._start_reply()

    def regenerate(self, message_id: int | None = None) -> None:
        """Write the reply `message_id` (default: the last one) again, keeping the old one as an
        alternative: the branch is rewound to the question it answers, then a new reply begins."""
        if self.streaming or self.conversation is None:
            return
        if message_id is None:
            last = self.view.last_assistant()
            if last is None:
                return
            message_id = last.message_id
        if not self.model_ready:
            self.modelNeeded.emit()
            return
        try:
            reply = self.store.get_message(message_id)
            if reply is None or reply.conversation_id != self.conversation.id:
                return
            self.store.rewind_to(self.conversation.id, reply.parent_id)
        except StoreError as exc:
            self.errorOccurred.emit(str(exc))
            return
        self.view.remove_from(message_id)
        self._start_reply()

    def switch_alternative(self, message_id: int, step: int) -> None:
        """Show the previous (-1) or next (+1) alternative of a message, and its branch below."""
        if self.streaming or self.conversation is None or self.branch is None:
            return
        siblings = self.branch.alternatives.get(message_id)
        if not siblings:
            return
        index = siblings.index(message_id) + step
        if not 0 <= index < len(siblings):
            return
        position = self.view.index_of(message_id)
        try:
            thread = self.store.choose(siblings[index])
        except StoreError as exc:
            self.errorOccurred.emit(str(exc))
            return
        self.branch = thread
        if position is None:
            self.view.show_messages(thread.messages, thread)
        else:
            self.view.replace_from(position, thread.messages[position:], thread)
        self.composer.cancel_edit()

    def begin_edit(self, message_id: int) -> None:
        widget = self.view.message(message_id)
        if self.streaming or not isinstance(widget, UserMessageWidget):
            return
        self.composer.begin_edit(message_id, widget.text)

    def stop(self) -> None:
        if self._active is not None:
            self.engine.cancel(self._active.job_id)

    def copy_last_reply(self) -> None:
        reply = self.view.last_assistant()
        if reply is not None:
            QGuiApplication.clipboard().setText(reply.answer_text())

    def _start_reply(self) -> None:
        assert self.conversation is not None
        conversation = self.conversation
        if self.draft_tools is not None and self.registry is not None:
            self.set_chat_tools(self.draft_tools)  # the new chat keeps what was chosen before it existed
            self.draft_tools = None
        selectors = self.chat_tools()
        registry = self.registry
        tools = (lambda: registry.toolset(selectors)) if registry is not None and selectors else None
        try:
            job_id, message_id = self.engine.start_turn(
                conversation.id,
                model_name=self.model_name,
                max_tokens=self.max_tokens if self.max_tokens is not None else self.options_max_tokens,
                sampling=self.sampling or self.options_sampling,
                tools=tools,
                approvals=self.approvals,
            )
        except StoreError as exc:
            self.errorOccurred.emit(str(exc))
            return
        widget = self.view.add_assistant(message_id)
        widget.tools_offered = tools is not None
        widget.start()
        self._active = ActiveReply(job_id, conversation.id, message_id, widget)
        self._set_streaming(True)
        self._refresh_thread()
        self.view.scroll_to_bottom()
        self.conversationsChanged.emit()

    def _wire(self, widget: MessageWidget) -> None:
        """Connect a message widget's actions (the view builds them as they come into view)."""
        copy = lambda text: QGuiApplication.clipboard().setText(text)  # noqa: E731
        widget.alternativeRequested.connect(self.switch_alternative)
        if isinstance(widget, AssistantMessageWidget):
            widget.regenerateRequested.connect(self.regenerate)
            widget.retryRequested.connect(self.regenerate)
            widget.copyRequested.connect(copy)
            widget.toolDecided.connect(self.decide)
            calls = self._calls.get(widget.message_id)
            if calls and not widget.tool_cards:
                widget.show_stored_calls(calls)
        else:
            widget.editRequested.connect(self.begin_edit)
            widget.copyRequested.connect(copy)

    def _set_streaming(self, streaming: bool) -> None:
        self.composer.set_streaming(streaming)
        self.view.refresh_actions(streaming)
        self.streamingChanged.emit()

    # -- results from the engine thread -------------------------------------------------------

    def _on_events(self, job_id: int, events: list[ParsedEvent]) -> None:
        active = self._active
        if active is None or active.job_id != job_id or active.widget is None:
            return
        active.widget.add_events(events)
        self._pacer.request()

    def _draw_reply(self) -> None:
        active = self._active
        if active is not None and active.widget is not None:
            active.widget.flush()

    def _on_finished(self, outcome: ReplyOutcome) -> None:
        active = self._active if self._active and self._active.job_id == outcome.job_id else None
        active = active or self._detached.pop(outcome.job_id, None)
        if outcome.calls:
            self._calls[outcome.message_id or 0] = list(outcome.calls)
        if active is not None and active is self._active:
            self._pacer.cancel()  # finish() below draws everything
            self._active = None
            self.composer.set_hint(None)
            if active.widget is not None:
                active.widget.finish(outcome.state, outcome.stats, outcome.error, outcome.stop_reason)
                self.view.settle(active.message_id)
            self._set_streaming(False)
        elif (
            self.conversation is not None
            and outcome.conversation_id == self.conversation.id
            and outcome.message_id is not None
        ):
            # A reply stopped by a switch away and back: show how it ended.
            widget = self.view.message(outcome.message_id)
            if isinstance(widget, AssistantMessageWidget):
                stored = self.store.get_message(outcome.message_id)
                if stored is not None:
                    widget.answer.clear()
                    widget.show_stored(stored, owned=True)
                self.view.settle(outcome.message_id)
        if outcome.save_error:
            self.errorOccurred.emit(f"The reply could not be saved: {outcome.save_error}")
        self.conversationsChanged.emit()
        self.replyFinished.emit(outcome)
