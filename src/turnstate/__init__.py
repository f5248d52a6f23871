"""turnstate: LLM conversation state in Redis, two round trips per turn, correct under races."""

from turnstate.config import Settings
from turnstate.errors import (
    EmbeddedServerError,
    EmbeddingError,
    InvalidInput,
    MemoryUnavailable,
    ServerUnavailable,
    SessionBusy,
    StaleTurn,
    TurnGone,
    TurnstateError,
)
from turnstate.store import Store, connect
from turnstate.sync import SyncStore, connect_sync
from turnstate.tokens import ApproximateCounter, CallableCounter, TokenCounter
from turnstate.types import Message, Policy, Role, SessionInfo, Turn

__version__ = "0.1.0"

__all__ = [
    "ApproximateCounter",
    "CallableCounter",
    "EmbeddedServerError",
    "EmbeddingError",
    "InvalidInput",
    "MemoryUnavailable",
    "Message",
    "Policy",
    "Role",
    "ServerUnavailable",
    "SessionBusy",
    "SessionInfo",
    "Settings",
    "StaleTurn",
    "Store",
    "SyncStore",
    "TokenCounter",
    "Turn",
    "TurnGone",
    "TurnstateError",
    "__version__",
    "connect",
    "connect_sync",
]
