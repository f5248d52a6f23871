"""Round trips per framework operation, counted on the server with MONITOR (see test_round_trips)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.test_round_trips import count, one_server  # noqa: F401 - the autouse fixture

pytest.importorskip("agents")
pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

from agents import Agent, OpenAIChatCompletionsModel, RunConfig, Runner
from langchain_core.messages import AIMessage, HumanMessage
from llama_index.core.llms import ChatMessage
from openai import AsyncOpenAI

from tests.test_integrations_openai_agents import TOOL_RUN
from turnstate import Store
from turnstate.integrations.langchain import TurnstateChatMessageHistory
from turnstate.integrations.llamaindex import TurnstateChatStore
from turnstate.integrations.openai_agents import TurnstateSession


async def test_an_agents_run_is_one_read_and_one_append_per_item(
    store: Store, redis_url: str, session_id: str, standin: Any
) -> None:
    client = AsyncOpenAI(base_url=standin.base_url, api_key="sk-test", max_retries=0)
    agent = Agent(name="helper", model=OpenAIChatCompletionsModel("m", client))
    session = TurnstateSession(session_id, store)

    async def run() -> None:
        await Runner.run(agent, "hello", session=session, run_config=RunConfig(tracing_disabled=True))

    await run()
    # The read, then the user input and the model's message: one EVALSHA each.
    assert await count(redis_url, session_id, run) == ["evalsha"] * 3
    await client.close()

    async def add_a_tool_run() -> None:
        await session.add_items(TOOL_RUN)

    assert await count(redis_url, session_id, add_a_tool_run) == ["evalsha"]  # four items, one script


async def test_langchain_and_llamaindex_cost_one_script_per_call(
    make_sync_store: Any, redis_url: str, session_id: str
) -> None:
    sync_store = make_sync_store()
    history = TurnstateChatMessageHistory(sync_store, session_id)
    chat_store = TurnstateChatStore(sync_store)

    async def langchain_turn() -> None:
        await history.aget_messages()
        await history.aadd_messages([HumanMessage("hi"), AIMessage("hello")])

    async def llamaindex_put_and_get() -> None:
        await chat_store.async_add_message(session_id, ChatMessage(role="user", content="hi"))
        await asyncio.to_thread(chat_store.get_messages, session_id)

    assert await count(redis_url, session_id, langchain_turn) == ["evalsha"] * 2  # a read, two messages added at once
    assert await count(redis_url, session_id, llamaindex_put_and_get) == ["evalsha"] * 2
