"""Run turns of one session from a separate process: `python -m tests.race_worker URL PREFIX SESSION FIRST COUNT`."""

from __future__ import annotations

import asyncio
import sys

from tests.helpers import one_turn
from turnstate import Settings, Store
from turnstate.connection import make_any_client


async def main(url: str, prefix: str, session: str, first: int, count: int) -> None:
    settings = Settings(key_prefix=prefix, queue_wait_seconds=60)
    async with Store(make_any_client(url, connect_timeout=5), settings) as store:
        await asyncio.gather(*(one_turn(store, session, n) for n in range(first, first + count)))


if __name__ == "__main__":
    url, prefix, session, first, count = sys.argv[1:]
    asyncio.run(main(url, prefix, session, int(first), int(count)))
