"""The synchronous facade drives the same store from plain code."""

from __future__ import annotations

import pytest

from turnstate import Settings, StaleTurn, connect_sync


def test_a_sync_conversation(redis_url: str, key_prefix: str) -> None:
    with connect_sync(redis_url, settings=Settings(key_prefix=key_prefix, lease_seconds=0.05)) as store:
        turn = store.begin_turn("sync-1", "Hello!", message_id="m-1")
        tool = store.append("sync-1", "tool", "looked it up", turn=turn)
        reply = store.finish_turn(turn, "Hi!")
        assert (turn.seq, tool.seq, reply.seq, reply.reply_to) == (1, 2, 3, 1)
        assert [m.content for m in store.history("sync-1")] == ["Hello!", "looked it up", "Hi!"]
        assert store.info("sync-1").last_seq == 3
        late = store.begin_turn("sync-1", "abandoned", message_id="m-2")
        assert store.abort_turn(late)
        assert store.begin_turn("sync-1", "abandoned", message_id="m-2").resumed
        with pytest.raises(StaleTurn):
            store.finish_turn(late, "from the old attempt")
        assert store.delete("sync-1")
