"""The OpenAI Agents SDK's Runner and Session protocol on turnstate, against the real test server.

The model is the SDK's own chat-completions model pointed at the local OpenAI stand-in.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("agents")

from agents import Agent, OpenAIChatCompletionsModel, RunConfig, Runner, SessionSettings
from agents.items import TResponseInputItem
from agents.memory import Session
from openai import AsyncOpenAI

from turnstate import Store
from turnstate.integrations.openai_agents import TurnstateSession

TOOL_RUN: list[TResponseInputItem] = [
    {"role": "user", "content": "weather in Oslo?"},
    {"type": "function_call", "call_id": "call-1", "name": "weather", "arguments": '{"city": "Oslo"}', "id": "fc-1"},
    {"type": "function_call_output", "call_id": "call-1", "output": "rain"},
    {"role": "assistant", "content": [{"type": "output_text", "text": "It rains.", "annotations": []}]},
]


async def test_a_runner_remembers_earlier_turns(store: Store, session_id: str, standin: Any) -> None:
    client = AsyncOpenAI(base_url=standin.base_url, api_key="sk-test", max_retries=0)
    agent = Agent(name="helper", instructions="Be brief.", model=OpenAIChatCompletionsModel("m", client))
    session = TurnstateSession(session_id, store)
    assert isinstance(session, Session)
    for n in range(3):
        result = await Runner.run(agent, f"question {n}", session=session, run_config=RunConfig(tracing_disabled=True))
        assert result.final_output == standin.reply
    await client.close()
    sent = [m["content"] for m in standin.requests[-1].messages if m["role"] == "user"]
    assert sent == ["question 0", "question 1", "question 2"]
    assert [m.role for m in await store.history(session_id)] == ["user", "assistant"] * 3


async def test_tool_items_keep_their_order_roles_and_fields(store: Store, session_id: str) -> None:
    session = TurnstateSession(session_id, store)
    await session.add_items(TOOL_RUN)
    await session.add_items(TOOL_RUN[1:2])  # a retried item with the same id: stored once
    assert await session.get_items() == TOOL_RUN
    assert await session.get_items(limit=2) == TOOL_RUN[2:]
    assert await TurnstateSession(session_id, store, session_settings=SessionSettings(limit=1)).get_items() == [
        TOOL_RUN[-1]
    ]
    assert [m.role for m in await store.history(session_id)] == ["user", "assistant", "tool", "assistant"]
    await session.clear_session()
    assert await session.get_items() == []
    assert await session.pop_item() is None


async def test_pop_item_undoes_the_newest_items_and_racing_pops_take_distinct_ones(
    store: Store, session_id: str
) -> None:
    session = TurnstateSession(session_id, store)
    await session.add_items(TOOL_RUN)
    assert await session.pop_item() == TOOL_RUN[-1]
    assert await session.get_items() == TOOL_RUN[:-1]
    assert await session.get_items(limit=1) == TOOL_RUN[2:3]
    await session.add_items(TOOL_RUN[-1:])  # the popped item's id (none here) is free again: stored anew
    assert await session.get_items() == TOOL_RUN
    other = TurnstateSession(session_id, store)
    popped = await asyncio.gather(session.pop_item(), other.pop_item(), session.pop_item(), other.pop_item())
    assert sorted(map(str, popped)) == sorted(map(str, TOOL_RUN))
    assert await session.pop_item() is None


async def test_items_are_bounded_to_max_messages(make_store: Any, session_id: str) -> None:
    session = TurnstateSession(session_id, make_store(max_messages=3, window_messages=3))
    for n in range(5):
        await session.add_items([{"role": "user", "content": f"m{n}"}])
    assert [item["content"] for item in await session.get_items()] == ["m2", "m3", "m4"]  # type: ignore[typeddict-item]


async def test_two_concurrent_runs_on_one_session_lose_nothing(make_store: Any, session_id: str) -> None:
    sessions = [TurnstateSession(session_id, make_store()) for _ in range(2)]  # two pools, as two replicas

    async def run(session: TurnstateSession, name: str) -> None:
        for n in range(10):
            await session.add_items(
                [
                    {"role": "user", "content": f"{name} {n}"},
                    {"role": "assistant", "content": "ok"},
                ]
            )

    await asyncio.gather(run(sessions[0], "a"), run(sessions[1], "b"))
    items = await sessions[0].get_items()
    assert len(items) == 40
    for name in ("a", "b"):
        mine = [i["content"] for i in items if str(i.get("content")).startswith(f"{name} ")]  # type: ignore[typeddict-item]
        assert mine == [f"{name} {n}" for n in range(10)]


async def test_the_summary_is_offered_first_when_asked_for(make_store: Any, session_id: str) -> None:
    store = make_store(max_messages=2, window_messages=2)
    session = TurnstateSession(session_id, store, include_summary=True)
    await session.add_items([{"role": "user", "content": f"m{n}"} for n in range(4)])
    assert await session.get_items() == [{"role": "user", "content": "m2"}, {"role": "user", "content": "m3"}]
    assert await store.commit_summary(session_id, "the user counted to one", expected_upto=0, new_upto=2)
    items = await session.get_items()
    assert items[0] == {"role": "system", "content": "Summary of the earlier conversation: the user counted to one"}
    assert items[1:] == await session.get_items(limit=2)


async def test_two_concurrent_runner_runs_on_one_session_lose_nothing(
    make_store: Any, session_id: str, standin: Any
) -> None:
    client = AsyncOpenAI(base_url=standin.base_url, api_key="sk-test", max_retries=0)
    agent = Agent(name="helper", model=OpenAIChatCompletionsModel("m", client))
    sessions = [TurnstateSession(session_id, make_store()) for _ in range(2)]
    config = RunConfig(tracing_disabled=True)
    await asyncio.gather(
        *(Runner.run(agent, f"from {n}", session=s, run_config=config) for n, s in enumerate(sessions))
    )
    await client.close()
    items = await sessions[0].get_items()
    assert sorted(i["content"] for i in items if i.get("role") == "user") == ["from 0", "from 1"]  # type: ignore[typeddict-item]
    assert len(items) == 4
