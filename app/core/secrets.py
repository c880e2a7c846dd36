"""The Hugging Face token, kept in the operating system's keyring (keyring package) and nowhere
else: never in settings files, logs or messages. `redact()` scrubs it from any text that might
reach a user or a log (error messages from HTTP libraries can echo request details).

keyring picks the platform's backend (macOS Keychain, Windows Credential Locker, Secret Service on
Linux). Tests install their own in-memory backend with `keyring.set_keyring(...)`.

`HF_TOKEN` in the environment, when set, is used instead of the stored token (as Hugging Face's own
tools do): a headless machine without a keyring can still download gated models.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

log = logging.getLogger(__name__)

SERVICE = "Hearth"
HF_TOKEN_USER = "huggingface-token"
HF_TOKEN_ENV = "HF_TOKEN"
REDACTED = "hf_***"

# What Hugging Face tokens look like (hf_ + 30-40 letters); used to scrub any token-shaped text,
# not only the one we stored, in case a message quotes a token the user pasted elsewhere.
_TOKEN_SHAPE = re.compile(r"\bhf_[A-Za-z0-9]{8,}\b")


class SecretsError(RuntimeError):
    """The keyring cannot be used; the message says what to do."""


def _keyring() -> Any:
    import keyring

    return keyring


def env_token() -> str | None:
    """HF_TOKEN from the environment, or None when unset or blank."""
    value = os.environ.get(HF_TOKEN_ENV, "").strip()
    return value or None


def get_hf_token() -> str | None:
    """HF_TOKEN from the environment, else the stored token; None when there is neither or no
    keyring is usable (downloads of public models must keep working on a machine without one)."""
    from_env = env_token()
    if from_env is not None:
        return from_env
    return stored_hf_token()


def stored_hf_token() -> str | None:
    """The token in the keyring only."""
    try:
        value = _keyring().get_password(SERVICE, HF_TOKEN_USER)
    except Exception as exc:  # keyring.errors.KeyringError and backend-specific failures
        log.debug("cannot read the Hugging Face token from the keyring: %s", type(exc).__name__)
        return None
    return value or None


def set_hf_token(token: str) -> None:
    """Store the token in the keyring; raises SecretsError if it is empty or cannot be stored."""
    token = token.strip()
    if not token:
        raise SecretsError("The token is empty.")
    if any(c.isspace() for c in token):
        raise SecretsError("A Hugging Face token has no spaces; copy it again from your Hugging Face settings.")
    try:
        _keyring().set_password(SERVICE, HF_TOKEN_USER, token)
    except Exception as exc:
        # The exception text is not shown: some backends include what they were asked to store.
        raise SecretsError(
            f"The token could not be saved in the system keyring ({type(exc).__name__}); "
            "on Linux, a Secret Service provider such as GNOME Keyring or KWallet must be running."
        ) from None


def delete_hf_token() -> None:
    """Forget the token (no error when there is none)."""
    try:
        _keyring().delete_password(SERVICE, HF_TOKEN_USER)
    except Exception as exc:  # keyring.errors.PasswordDeleteError when absent
        log.debug("no Hugging Face token deleted: %s", type(exc).__name__)


def has_hf_token() -> bool:
    return get_hf_token() is not None


def redact(text: str, token: str | None = None) -> str:
    """`text` with the given token (and HF_TOKEN's) and anything token-shaped replaced by a placeholder."""
    for secret in (token, env_token()):
        if secret and len(secret) >= 8:
            text = text.replace(secret, REDACTED)
    return _TOKEN_SHAPE.sub(REDACTED, text)


# ---- other secrets: the API server's key, remote engines' keys -----------------------------------


def get_secret(name: str) -> str | None:
    """A secret kept under `name` in the keyring, or None (none, or no usable keyring)."""
    try:
        value = _keyring().get_password(SERVICE, name)
    except Exception as exc:
        log.debug("cannot read %s from the keyring: %s", name, type(exc).__name__)
        return None
    return value or None


def set_secret(name: str, value: str) -> None:
    """Keep a secret in the keyring; raises SecretsError when it cannot be stored."""
    if not value.strip():
        raise SecretsError("The key is empty.")
    try:
        _keyring().set_password(SERVICE, name, value.strip())
    except Exception as exc:
        raise SecretsError(
            f"The key could not be saved in the system keyring ({type(exc).__name__}); "
            "on Linux, a Secret Service provider such as GNOME Keyring or KWallet must be running."
        ) from None


def delete_secret(name: str) -> None:
    try:
        _keyring().delete_password(SERVICE, name)
    except Exception as exc:
        log.debug("no %s deleted: %s", name, type(exc).__name__)
