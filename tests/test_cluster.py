"""The turn protocol on a real Redis Cluster of 3 masters, including a live slot migration (MOVED/ASK)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from tests.helpers import assert_consistent, one_turn
from tests.test_round_trips import count
from turnstate import ServerUnavailable, Store
from turnstate.keys import SessionKeys, session_keys

RACERS = 16


@pytest.fixture
async def nodes(valkey_cluster: Any) -> AsyncIterator[dict[int, aioredis.Redis]]:
    """A plain client on each node, by port, to ask a node about itself."""
    clients = {port: aioredis.Redis(port=port) for port in valkey_cluster.ports}
    yield clients
    for c in clients.values():
        await c.aclose()


def keys_of(store: Store, session: str) -> SessionKeys:
    return session_keys(store.settings.key_prefix, store.settings.tenant, session)


async def slot_owner(nodes: dict[int, aioredis.Redis], slot: int) -> int:
    """The port of the master serving `slot`, as the cluster itself reports it."""
    for start, end, master, *_ in await next(iter(nodes.values())).execute_command("CLUSTER", "SLOTS"):
        if start <= slot <= end:
            return int(master[1])
    raise AssertionError(f"no node serves slot {slot}")


async def test_the_store_opens_a_cluster_client_for_a_cluster_url(make_cluster_store: Any) -> None:
    store = make_cluster_store()
    assert isinstance(store.client, RedisCluster)
    assert await store.ping()


async def test_a_conversation_on_the_cluster(make_cluster_store: Any, session_id: str) -> None:
    store = make_cluster_store()
    for n in range(3):
        await one_turn(store, session_id, n, think=0)
    history = await store.history(session_id)
    assert_consistent(history, expected_turns=3)
    assert (await store.info(session_id)).last_seq == 6
    assert await store.delete(session_id)
    assert await store.history(session_id) == []


async def test_queue_loses_nothing_under_16_concurrent_turns_on_the_cluster(
    make_cluster_store: Any, session_id: str
) -> None:
    store = make_cluster_store(queue_wait_seconds=5.0)
    results = await asyncio.gather(*(one_turn(store, session_id, n) for n in range(RACERS)), return_exceptions=True)
    assert [r for r in results if isinstance(r, BaseException)] == []
    history = await store.history(session_id)
    assert len(history) == 2 * RACERS
    assert_consistent(history, expected_turns=RACERS)


async def test_a_retried_message_is_stored_once_on_the_cluster(make_cluster_store: Any, session_id: str) -> None:
    store = make_cluster_store()
    first = await store.begin_turn(session_id, "hello", message_id="m-1")
    assert await store.abort_turn(first)  # the model call failed
    again = await store.begin_turn(session_id, "hello", message_id="m-1")
    assert (again.seq, again.resumed) == (first.seq, True)
    reply = await store.finish_turn(again, "hi")
    answered = await store.begin_turn(session_id, "hello", message_id="m-1")
    assert answered.reply == reply
    assert [m.content for m in await store.history(session_id)] == ["hello", "hi"]


async def test_every_key_of_a_session_lands_in_one_slot_on_one_node(
    make_cluster_store: Any, nodes: dict[int, aioredis.Redis], session_id: str
) -> None:
    store = make_cluster_store()
    await one_turn(store, session_id, 0, think=0)
    await store.summary_work(session_id)
    names = keys_of(store, session_id).all()
    some_node = next(iter(nodes.values()))
    slots = {await some_node.cluster("KEYSLOT", name) for name in names}
    assert len(slots) == 1
    slot = slots.pop()
    home = await slot_owner(nodes, slot)
    assert await nodes[home].exists(*names) >= 2  # msgs and meta at least; the others come and go
    assert [await c.cluster("COUNTKEYSINSLOT", slot) for port, c in nodes.items() if port != home] == [0, 0]


async def test_noscript_on_the_cluster_falls_back_to_eval(
    make_cluster_store: Any, nodes: dict[int, aioredis.Redis], session_id: str
) -> None:
    store = make_cluster_store()
    await one_turn(store, session_id, 0, think=0)
    for c in nodes.values():
        await c.script_flush()
    home = await slot_owner(nodes, await next(iter(nodes.values())).cluster("KEYSLOT", keys_of(store, session_id).msgs))

    async def turn() -> None:
        await one_turn(store, session_id, 1, think=0)

    assert await count(f"redis://127.0.0.1:{home}", session_id, turn) == ["evalsha", "eval", "evalsha", "eval"]
    assert_consistent(await store.history(session_id), expected_turns=2)


async def test_an_unreachable_cluster_is_server_unavailable_without_credentials(make_settings: Any) -> None:
    from turnstate.servers import free_port
    from turnstate.store import open_store

    port = free_port()
    with pytest.raises(ServerUnavailable) as caught:
        await open_store(
            f"redis+cluster://me:s3cret@127.0.0.1:{port}", settings=make_settings(connect_timeout_seconds=1)
        )
    assert f"redis+cluster://127.0.0.1:{port}" in str(caught.value)
    assert "s3cret" not in str(caught.value)


async def migrate_slot(nodes: dict[int, aioredis.Redis], slot: int, source_port: int, target_port: int) -> None:
    """Move `slot` as a resharding does: IMPORTING/MIGRATING, MIGRATE its keys, then SETSLOT NODE everywhere."""
    source, target = nodes[source_port], nodes[target_port]
    source_id, target_id = [(await c.cluster("MYID")).decode() for c in (source, target)]
    await target.cluster("SETSLOT", slot, "IMPORTING", source_id)
    await source.cluster("SETSLOT", slot, "MIGRATING", target_id)
    while keys := await source.cluster("GETKEYSINSLOT", slot, 100):
        await source.execute_command("MIGRATE", "127.0.0.1", target_port, "", 0, 5000, "KEYS", *keys)
    for c in (target, source, *(c for port, c in nodes.items() if port not in (source_port, target_port))):
        await c.cluster("SETSLOT", slot, "NODE", target_id)


async def test_turns_carry_on_while_their_slot_moves_to_another_master(
    make_cluster_store: Any, nodes: dict[int, aioredis.Redis], session_id: str
) -> None:
    store = make_cluster_store(queue_wait_seconds=5.0)
    slot = await next(iter(nodes.values())).cluster("KEYSLOT", keys_of(store, session_id).msgs)
    source = await slot_owner(nodes, slot)
    target = next(port for port in nodes if port != source)
    talkers, turns_each = 4, 10
    finished: list[int] = []
    under_way = asyncio.Event()

    async def talk(talker: int) -> None:
        # Four talkers queue on one session, so turns also wait on BLPOP while the slot moves.
        for n in range(talker * turns_each, (talker + 1) * turns_each):
            await one_turn(store, session_id, n, think=0.01)
            finished.append(n)
            if len(finished) == talkers * 2:
                under_way.set()

    async def move() -> int:
        await asyncio.wait_for(under_way.wait(), timeout=20)
        await migrate_slot(nodes, slot, source, target)
        return len(finished)

    async with asyncio.timeout(60):
        *failures, finished_before_move = await asyncio.gather(
            *(talk(t) for t in range(talkers)), move(), return_exceptions=True
        )
    assert [f for f in failures if f is not None] == []
    assert finished_before_move < talkers * turns_each, "the move happened after the run: nothing was tested"
    assert await slot_owner(nodes, slot) == target
    assert await nodes[source].cluster("COUNTKEYSINSLOT", slot) == 0
    history = await store.history(session_id)
    assert len(history) == 2 * talkers * turns_each
    assert_consistent(history, expected_turns=talkers * turns_each)


async def test_the_cluster_client_allows_as_many_connections_per_node_as_configured(
    make_cluster_store: Any,
) -> None:
    # redis-py's cluster client allows 100 per node unless told; past that it raises
    # MaxConnectionsError, a connection error, and answers it by dropping the node's connections.
    store = make_cluster_store()
    turns = await asyncio.gather(*(store.begin_turn(f"s{n}", "hello") for n in range(450)), return_exceptions=True)
    assert [t for t in turns if isinstance(t, BaseException)] == []
    nodes = store.client.get_nodes()  # type: ignore[attr-defined]
    assert len(nodes) == 3 and {node.max_connections for node in nodes} == {1000}
