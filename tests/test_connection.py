"""Redis clients as turnstate builds them: what one process can ask of one server at once."""

from __future__ import annotations

import asyncio
from typing import Any

from turnstate import Store


async def test_more_than_a_hundred_concurrent_turns_in_one_process_all_succeed(make_store: Any) -> None:
    # redis-py's own pool default (100) refused the 101st connection at once: make_client raises the cap
    store: Store = make_store()
    turns = await asyncio.gather(*(store.begin_turn(f"s{n}", "hello") for n in range(150)), return_exceptions=True)
    assert [t for t in turns if isinstance(t, BaseException)] == []
