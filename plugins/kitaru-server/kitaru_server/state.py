"""What every request of one server process shares: its stack, client, keys and limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .keys import KeyStore
from .security import KeyCache, RateLimiter
from .sessions import SessionSigner, registry_secret
from .settings import ServerSettings

if TYPE_CHECKING:
    from kitaru import KitaruClient
    from kitaru_core.stack import Stack


@dataclass
class ServerState:
    settings: ServerSettings
    client: KitaruClient
    keys: KeyStore = field(init=False)
    key_cache: KeyCache = field(init=False)
    limiter: RateLimiter = field(init=False)
    #: Signs the dashboard's session cookies (secret: the settings', else one kept in the registry).
    sessions: SessionSigner = field(init=False)

    def __post_init__(self) -> None:
        self.keys = KeyStore(self.stack.registry)
        self.key_cache = KeyCache(self.keys, self.settings.key_cache_seconds)
        self.limiter = RateLimiter(self.settings.input_rate, self.settings.input_burst)
        secret = self.settings.session_secret
        self.sessions = SessionSigner(
            (lambda: secret) if secret else registry_secret(self.stack.registry),
            self.settings.session_max_age)

    @property
    def stack(self) -> Stack:
        return self.client._stack  # the client's built stack: one registry connection per server

    @classmethod
    def build(cls, settings: ServerSettings) -> ServerState:
        from kitaru import KitaruClient
        from kitaru_core.stack import get_stack

        from .stack_options import server_stack_spec

        spec = server_stack_spec(settings.stack, settings.registry)
        if spec is None:
            return cls(settings, KitaruClient(stack=settings.stack))
        return cls(settings, KitaruClient.for_stack(get_stack(spec=spec)))
