"""Counting the commands a piece of code sends, as the server sees them (MONITOR).

Counting on the server, not in the client, keeps the count honest: a pipeline of four commands
is four commands, a script is one, and whatever the client library does on its own shows up.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

DRAIN_TIMEOUT_SECONDS = 10.0


async def count_commands(
    client: aioredis.Redis, marker: str, action: Callable[[], Awaitable[object]]
) -> Counter[str] | None:
    """Run `action`; count, by name, the commands clients sent that mention `marker`.

    Commands run inside scripts are not counted (they cost no round trip). Returns None when
    the server refuses MONITOR, as managed services often do.
    """
    end = f"{marker}:end:{uuid.uuid4().hex}"
    seen: Counter[str] = Counter()
    try:
        async with client.monitor() as monitor:
            await action()
            await client.echo(end)  # the server logs it after every command of `action`
            async with asyncio.timeout(DRAIN_TIMEOUT_SECONDS):
                while True:
                    event = await monitor.next_command()
                    command = event["command"]
                    if end in command:
                        return seen
                    if event["client_type"] != "lua" and marker in command:
                        seen[command.split(" ", 1)[0].lower()] += 1
    except ResponseError:
        return None
