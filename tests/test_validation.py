"""Bad input gets a clear, typed error and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from turnstate import InvalidInput, ServerUnavailable, Settings, Store, TurnGone, connect

BAD_IDS = ["", "{x}", "a:b", "a*", "a b", "tab\there", "new\nline", "-leading-dash", "x" * 129, "é", "a}b{"]


async def assert_untouched(client: aioredis.Redis, key_prefix: str) -> None:
    assert [k async for k in client.scan_iter(match=f"{key_prefix}:*")] == []


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_invalid_session_ids_are_refused(store: Store, client: aioredis.Redis, key_prefix: str, bad: str) -> None:
    with pytest.raises(InvalidInput, match="invalid session id"):
        await store.begin_turn(bad, "hello")
    await assert_untouched(client, key_prefix)


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_invalid_tenant_ids_are_refused(store: Store, client: aioredis.Redis, key_prefix: str, bad: str) -> None:
    with pytest.raises(InvalidInput, match="invalid tenant id"):
        await store.begin_turn("s", "hello", tenant=bad)
    await assert_untouched(client, key_prefix)


@pytest.mark.parametrize(
    ("content", "match"),
    [("", "empty"), ("   \n\t", "empty"), ("x" * 40_000, "limit"), ("bad \ud800 surrogate", "Unicode"), (42, "string")],
)
async def test_bad_content_is_refused(
    store: Store, client: aioredis.Redis, key_prefix: str, session_id: str, content: Any, match: str
) -> None:
    with pytest.raises(InvalidInput, match=match):
        await store.begin_turn(session_id, content)
    await assert_untouched(client, key_prefix)


async def test_the_content_limit_is_configurable(make_store: Any, session_id: str) -> None:
    store = make_store(max_content_bytes=10)
    await store.append(session_id, "system", "ten bytes!")
    with pytest.raises(InvalidInput, match="11 bytes; the limit is 10"):
        await store.append(session_id, "system", "eleven byte")


async def test_unknown_roles_and_bad_message_ids_are_refused(store: Store, session_id: str) -> None:
    with pytest.raises(InvalidInput, match="unknown role"):
        await store.append(session_id, "wizard", "hello")
    with pytest.raises(InvalidInput, match="invalid message id"):
        await store.begin_turn(session_id, "hello", message_id="{evil}")
    with pytest.raises(InvalidInput, match="invalid message id"):
        await store.begin_turn(session_id, "hello", message_id="x" * 201)
    assert await store.history(session_id) == []


async def test_a_foreign_turn_cannot_be_finished_elsewhere(store: Store, session_id: str) -> None:
    turn = await store.begin_turn(session_id, "mine", message_id="m-1")
    other = await store.begin_turn(f"{session_id}-other", "theirs", message_id="m-9")
    forged = type(turn)(**{**{f: getattr(turn, f) for f in turn.__slots__}, "message_id": other.message_id})
    with pytest.raises(TurnGone):  # its id names no turn of this session: as if deleted
        await store.finish_turn(forged, "reply to the wrong turn")
    await store.append(session_id, "system", "an id that names another message", message_id="m-9")
    with pytest.raises(InvalidInput, match="does not belong"):
        await store.finish_turn(forged, "reply to the wrong turn")
    await store.delete(session_id)
    with pytest.raises(TurnGone, match="no longer holds turn 1"):
        await store.finish_turn(turn, "reply to a deleted session")
    assert await store.history(session_id) == []
    assert len(await store.history(f"{session_id}-other")) == 1


async def test_append_refuses_a_turn_of_another_session(store: Store, session_id: str) -> None:
    turn = await store.begin_turn(session_id, "hello", tenant="acme")
    with pytest.raises(InvalidInput, match="another session"):
        await store.append(f"{session_id}-x", "tool", "output", turn=turn)
    with pytest.raises(InvalidInput, match="another session"):
        await store.append(session_id, "tool", "output", turn=turn, tenant="default")
    tool = await store.append(session_id, "tool", "output", turn=turn)  # the turn's tenant by default
    assert [m.id for m in await store.history(session_id, tenant="acme")] == [turn.message_id, tool.id]


async def test_unknown_policies_are_refused(store: Store, session_id: str) -> None:
    with pytest.raises(InvalidInput, match="unknown policy 'yolo'"):
        await store.begin_turn(session_id, "hello", policy="yolo")
    assert await store.history(session_id) == []


async def test_an_unreachable_server_is_named_without_credentials(tmp_path: Any) -> None:
    settings = Settings(data_dir=tmp_path, connect_timeout_seconds=1)
    with pytest.raises(ServerUnavailable) as excinfo:
        await connect("redis://alice:s3cret@127.0.0.1:1/0", settings=settings)
    assert "127.0.0.1:1" in str(excinfo.value)
    assert "s3cret" not in str(excinfo.value) and "alice" not in str(excinfo.value)


async def test_an_unsupported_url_scheme_is_refused(tmp_path: Any) -> None:
    with pytest.raises(InvalidInput, match="scheme 'http'"):
        await connect("http://127.0.0.1:6379", settings=Settings(data_dir=tmp_path))


def test_settings_refuse_a_window_larger_than_the_hot_list() -> None:
    with pytest.raises(ValueError, match="window_messages"):
        Settings(window_messages=60, max_messages=50)
