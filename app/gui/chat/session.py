"""The open conversation: send, stop, regenerate, edit and resend, switch; ties the store, the
engine thread and the chat view together. Runs on the GUI thread; every slow thing it starts
(tokenizing, generating, saving the streamed reply) happens on the engine thread."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QGuiApplication

from app.core.store import ChatStore, StoreError
from app.core.store import Conversation as StoredConversation
from app.gui.chat.composer import Composer
from app.gui.chat.messages import AssistantMessageWidget, UserMessageWidget
from app.gui.chat.view import ChatView
from app.gui.workers import EngineController

if TYPE_CHECKING:
    from app.core.chat.service import ReplyOutcome
    from app.core.engine import Sampling
    from app.core.formats.base import ParsedEvent

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
        self.model_name: str | None = None
        self.max_tokens: int | None = None
        self.sampling: Sampling | None = None  # None: the model's defaults
        self.draft_effort = "medium"
        self.draft_system_prompt = ""
        self._active: ActiveReply | None = None
        self._detached: dict[int, ActiveReply] = {}  # stopped replies still finishing
        engine.events.connect(self._on_events)
        engine.finished.connect(self._on_finished)
        composer.sendRequested.connect(self.send)
        composer.stopRequested.connect(self.stop)

    # -- state --------------------------------------------------------------------------------

    @property
    def streaming(self) -> bool:
        return self._active is not None

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
            self.conversation = None
            self.view.clear()
        else:
            try:
                conversation = self.store.get_conversation(conversation_id)
                messages = self.store.messages(conversation_id) if conversation else []
            except StoreError as exc:
                self.errorOccurred.emit(str(exc))
                return
            self.conversation = conversation
            self.view.show_messages(messages)
            self._wire_view()
        self.view.refresh_actions()
        self.conversationChanged.emit(self.conversation)

    def new_chat(self) -> None:
        self.open(None)

    def reload(self) -> None:
        """Show the open conversation again from the store (after a theme change)."""
        if self.conversation is not None and not self.streaming:
            conversation_id, self.conversation = self.conversation.id, None
            self.open(conversation_id)

    def _detach(self) -> None:
        if self._active is not None:
            self.engine.cancel(self._active.job_id)
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

    # -- sending ------------------------------------------------------------------------------

    def send(self, text: str) -> None:
        if self.streaming or not text.strip():
            return
        try:
            editing = self.composer.editing
            if editing is not None and self.conversation is not None:
                self.store.delete_messages_after(self.conversation.id, editing, inclusive=True)
                self.view.remove_from(editing)
                self.composer.end_edit()
            if self.conversation is None:
                self.conversation = self.store.create_conversation(
                    title_for(text),
                    system_prompt=self.draft_system_prompt,
                    model=self.model_name,
                    effort=self.draft_effort,
                )
                self.conversationChanged.emit(self.conversation)
            message = self.store.add_message(self.conversation.id, "user", text)
        except StoreError as exc:
            self.composer.set_text(text)  # nothing typed is lost
            self.errorOccurred.emit(str(exc))
            return
        user = self.view.add_user(message.id, text)
        user.editRequested.connect(self.begin_edit)
        user.copyRequested.connect(lambda text: QGuiApplication.clipboard().setText(text))
        self.view.scroll_to_bottom()
        self._start_reply()

    def regenerate(self) -> None:
        """Replace the last reply with a new one."""
        last_user = self.view.last_user()
        if self.streaming or self.conversation is None or last_user is None:
            return
        try:
            self.store.delete_messages_after(self.conversation.id, last_user.message_id)
        except StoreError as exc:
            self.errorOccurred.emit(str(exc))
            return
        self.view.remove_from(last_user.message_id + 1)
        self._start_reply()

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
        try:
            job_id, message_id = self.engine.start_turn(
                conversation.id, model_name=self.model_name, max_tokens=self.max_tokens, sampling=self.sampling
            )
        except StoreError as exc:
            self.errorOccurred.emit(str(exc))
            return
        widget = self.view.add_assistant(message_id)
        self._wire(widget)
        widget.start()
        self._active = ActiveReply(job_id, conversation.id, message_id, widget)
        self._set_streaming(True)
        self.view.scroll_to_bottom()
        self.conversationsChanged.emit()

    def _wire(self, widget: AssistantMessageWidget) -> None:
        widget.regenerateRequested.connect(self.regenerate)
        widget.retryRequested.connect(self.regenerate)
        widget.copyRequested.connect(lambda text: QGuiApplication.clipboard().setText(text))

    def _wire_view(self) -> None:
        """Connect the actions of the message widgets of a conversation just shown."""
        for widget in self.view.messages:
            if isinstance(widget, AssistantMessageWidget):
                self._wire(widget)
            else:
                widget.editRequested.connect(self.begin_edit)
                widget.copyRequested.connect(lambda text: QGuiApplication.clipboard().setText(text))

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
        active.widget.flush()

    def _on_finished(self, outcome: ReplyOutcome) -> None:
        active = self._active if self._active and self._active.job_id == outcome.job_id else None
        active = active or self._detached.pop(outcome.job_id, None)
        if active is not None and active is self._active:
            self._active = None
            if active.widget is not None:
                active.widget.finish(outcome.state, outcome.stats, outcome.error, outcome.stop_reason)
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
                    widget.show_stored(stored)
        if outcome.save_error:
            self.errorOccurred.emit(f"The reply could not be saved: {outcome.save_error}")
        self.conversationsChanged.emit()
        self.replyFinished.emit(outcome)
