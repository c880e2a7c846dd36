"""Remote engines the user added (Settings → Engines): OpenAI-compatible servers by base URL.

The list lives in the store's settings (`remote.servers`: API roots as `normalise_url` writes
them); each server's API key, when it has one, in the system keyring (`remote-key:URL`). Listing a
server's models is a network call (recorded in netlog by RemoteBackend): it runs only when the
user adds a server, opens Settings, or the window starts with servers configured — never on the
GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.core.netlog import host_of
from app.core.store import ChatStore

if TYPE_CHECKING:  # imported when used: the window lists servers at start-up, before any engine
    from app.core.engine.remote import RemoteBackend

SETTING_SERVERS = "remote.servers"
MAX_SERVERS = 32
MAX_MODELS_SHOWN = 200  # per server, in the picker


@dataclass(frozen=True)
class RemoteModel:
    server: str  # the API root, e.g. http://gpu-box:8080/v1
    name: str  # the model's id on that server

    @property
    def host(self) -> str:
        return host_of(self.server)

    @property
    def key(self) -> str:
        """What the settings remember as the chosen model."""
        return f"remote:{self.server}#{self.name}"


def parse_key(key: str) -> RemoteModel | None:
    if not key.startswith("remote:") or "#" not in key:
        return None
    server, _, name = key[len("remote:") :].partition("#")
    return RemoteModel(server, name) if server and name else None


def _secret_name(server: str) -> str:
    return f"remote-key:{server}"


def servers(store: ChatStore) -> list[str]:
    value = store.get_setting(SETTING_SERVERS, [])
    if not isinstance(value, list):
        return []
    return [s for s in value if isinstance(s, str)][:MAX_SERVERS]


def add_server(store: ChatStore, url: str, api_key: str | None = None) -> str:
    """Remember a server (its key in the keyring); returns its API root. Raises EngineError with a
    sentence for an address that is not a server's, SecretsError when the key cannot be kept."""
    from app.core import secrets
    from app.core.engine.remote import normalise_url
    from app.core.engine.types import EngineError

    root = normalise_url(url)
    known = servers(store)
    if root not in known and len(known) >= MAX_SERVERS:
        raise EngineError(f"Hearth keeps up to {MAX_SERVERS} servers; remove one first.")
    if api_key and api_key.strip():
        secrets.set_secret(_secret_name(root), api_key.strip())
    store.set_setting(SETTING_SERVERS, [*[s for s in known if s != root], root])
    return root


def remove_server(store: ChatStore, server: str) -> None:
    from app.core import secrets

    store.set_setting(SETTING_SERVERS, [s for s in servers(store) if s != server])
    secrets.delete_secret(_secret_name(server))


def api_key(server: str) -> str | None:
    from app.core import secrets

    return secrets.get_secret(_secret_name(server))


def backend(server: str) -> RemoteBackend:
    from app.core.engine.remote import RemoteBackend

    return RemoteBackend(server, api_key(server))


def list_models(server: str) -> list[RemoteModel]:
    """The models a server offers (a network call); raises EngineError with a sentence."""
    remote = backend(server)
    try:
        return [RemoteModel(server, name) for name in remote.models()[:MAX_MODELS_SHOWN]]
    finally:
        remote.close()
