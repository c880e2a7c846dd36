"""The Hugging Face token dialog: the token goes to the OS keyring (through app.core.secrets), never
into settings, logs or messages; the field is masked and cleared once handed over."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from app.gui.library.controller import LibraryController
from app.gui.theme import named

TOKENS_PAGE = "https://huggingface.co/settings/tokens"


class TokenDialog(QDialog):
    def __init__(self, controller: LibraryController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setWindowTitle("Hugging Face token")
        self.setMinimumWidth(480)
        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        intro = QLabel(
            "Some models (gated or private) need a Hugging Face account that accepted the model's licence. "
            f'Create a read token at <a href="{TOKENS_PAGE}">{TOKENS_PAGE}</a> and paste it here. '
            "Hearth keeps it in the system keyring and sends it only to Hugging Face, only when you download "
            "or search."
        )
        intro.setWordWrap(True)
        intro.setTextFormat(Qt.TextFormat.RichText)
        intro.setOpenExternalLinks(True)  # opened only on click, in the system browser
        layout.addWidget(intro)
        self.state = named(QLabel("Checking the keyring…"), "Muted")
        self.state.setAccessibleName("Token status")
        layout.addWidget(self.state)
        self.edit = QLineEdit()
        self.edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.edit.setPlaceholderText("hf_…")
        self.edit.setAccessibleName("Hugging Face token")
        self.edit.textChanged.connect(self._update_buttons)
        self.edit.returnPressed.connect(self.save)
        layout.addWidget(self.edit)
        self.error = named(QLabel(), "ErrorLabel")
        self.error.setWordWrap(True)
        self.error.setVisible(False)
        layout.addWidget(self.error)
        buttons = QHBoxLayout()
        self.remove_button = QPushButton("Remove saved token")
        self.remove_button.clicked.connect(self.remove)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        self.cancel_button = QPushButton("Close")
        self.cancel_button.clicked.connect(self.reject)
        self.save_button = named(QPushButton("Save"), "PrimaryButton")
        self.save_button.setMinimumHeight(30)
        self.save_button.setMinimumWidth(90)
        self.save_button.clicked.connect(self.save)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.save_button)
        layout.addLayout(buttons)
        controller.tokenChanged.connect(self._on_token)
        controller.tokenFailed.connect(self._on_failed)
        self._saving = False
        self._on_token(controller.has_token) if controller.has_token is not None else controller.check_token()
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.save_button.setEnabled(bool(self.edit.text().strip()) and not self._saving)
        self.remove_button.setEnabled(bool(self.controller.has_token) and not self._saving)

    def _on_token(self, present: bool | None) -> None:
        self.state.setText("A token is saved in the system keyring." if present else "No token saved.")
        if self._saving and present:
            self._saving = False
            self.edit.clear()  # the token is not kept in the widget
            self.accept()
        self._update_buttons()

    def _on_failed(self, text: str) -> None:
        if self._saving:
            self._saving = False
            self.error.setText(text)
            self.error.setVisible(True)
            self._update_buttons()

    def save(self) -> None:
        token = self.edit.text().strip()
        if not token:
            return
        if any(c.isspace() for c in token):
            self.error.setText("A Hugging Face token has no spaces; copy it again from your Hugging Face settings.")
            self.error.setVisible(True)
            return
        self.error.setVisible(False)
        self._saving = True
        self._update_buttons()
        self.controller.set_token(token)

    def remove(self) -> None:
        self.controller.delete_token()
