"""The Lua scripts, each loaded once and called by SHA.

Each turn-protocol script is run with `_lib.lua` in front of it, so shared helpers live in one place.
The SHA is computed locally: the first call is an EVALSHA; if the server answers NOSCRIPT (its
script cache was flushed, a failover, or a replica that never saw the script), the one retry is
an EVAL with the body, which also caches it. No SCRIPT LOAD round trip is ever needed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import NoScriptError


class ScriptClient(Protocol):
    """The part of a redis-py asyncio client (plain or cluster) a script needs."""

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Awaitable[Any]: ...

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Awaitable[Any]: ...


def _source(name: str) -> str:
    return (files(__package__) / name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Script:
    """One server-side script: its full body and SHA1."""

    name: str
    body: str
    sha: str

    @classmethod
    def load(cls, name: str, *, prelude: bool = True) -> Script:
        """Read `<name>.lua`; `prelude=False` leaves out `_lib.lua` (scripts outside the turn protocol)."""
        body = _source(f"{name}.lua")
        if prelude:
            body = _source("_lib.lua") + "\n" + body
        return cls(name, body, hashlib.sha1(body.encode()).hexdigest())

    async def __call__(self, client: ScriptClient, keys: list[str], args: list[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.body, len(keys), *keys, *args)


BEGIN_TURN = Script.load("begin_turn")
FINISH_TURN = Script.load("finish_turn")
APPEND = Script.load("append")
REMOVE = Script.load("remove")
READ_RECENT = Script.load("read_recent")
ABORT_TURN = Script.load("abort_turn")
READ_SESSION = Script.load("read_session")
SUMMARY_WORK = Script.load("summary_work")
COMMIT_SUMMARY = Script.load("commit_summary")
TURN_PROTOCOL = (
    BEGIN_TURN,
    FINISH_TURN,
    APPEND,
    ABORT_TURN,
    REMOVE,
    READ_SESSION,
    READ_RECENT,
    SUMMARY_WORK,
    COMMIT_SUMMARY,
)


async def ensure_loaded(client: Redis) -> list[str]:
    """Load any turn-protocol script the server lacks (a readiness check warms the cache)."""
    present = await client.script_exists(*(s.sha for s in TURN_PROTOCOL))
    for script, ok in zip(TURN_PROTOCOL, present, strict=True):
        if not ok:
            await client.script_load(script.body)
    return [s.name for s in TURN_PROTOCOL]
