"""LangChain's own classes on turnstate's chat history, against the real test server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.runnables.history import RunnableWithMessageHistory

from turnstate.integrations.langchain import TurnstateChatMessageHistory

# langchain-core 1.x deprecates RunnableWithMessageHistory (for LangGraph) but ships it, and the
# chat-history interface is what existing apps use; only that one warning is let through.
pytestmark = pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")


def _echo_history_length(inputs: dict[str, Any]) -> AIMessage:
    return AIMessage(content=f"I remember {len(inputs['history'])} messages")


def _chain(make_sync_store: Any, **settings: Any) -> RunnableWithMessageHistory:
    store = make_sync_store(**settings)
    return RunnableWithMessageHistory(
        RunnableLambda(_echo_history_length),
        lambda session_id: TurnstateChatMessageHistory(store, session_id),
        input_messages_key="input",
        history_messages_key="history",
    )


def _config(session_id: str) -> Any:
    return {"configurable": {"session_id": session_id}}


def test_a_multi_turn_chain_remembers(make_sync_store: Any, session_id: str) -> None:
    chain = _chain(make_sync_store)
    replies = [chain.invoke({"input": f"turn {n}"}, config=_config(session_id)).content for n in range(3)]
    assert replies == ["I remember 0 messages", "I remember 2 messages", "I remember 4 messages"]


async def test_the_async_path_remembers_too(make_sync_store: Any, session_id: str) -> None:
    chain = _chain(make_sync_store)
    for n in range(2):
        reply = await chain.ainvoke({"input": f"turn {n}"}, config=_config(session_id))
    assert reply.content == "I remember 2 messages"


async def test_every_message_type_round_trips_with_its_role(make_sync_store: Any, session_id: str) -> None:
    store = make_sync_store()
    history = TurnstateChatMessageHistory(store, session_id)
    sent: list[BaseMessage] = [
        SystemMessage("be brief"),
        HumanMessage("weather?", id="h-1"),
        AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Oslo"}, "id": "call-1"}]),
        ToolMessage("rain", tool_call_id="call-1"),
        AIMessage("It rains.", response_metadata={"model": "m"}),
    ]
    await history.aadd_messages(sent)
    assert await history.aget_messages() == sent
    stored = store.history(session_id)
    assert [m.role for m in stored] == ["system", "user", "assistant", "tool", "assistant"]
    history.add_messages([HumanMessage("weather?", id="h-1")])  # a retry with the same id: stored once
    assert len(history.messages) == len(sent)
    history.clear()
    assert history.messages == []


def test_history_is_bounded_to_max_messages(make_sync_store: Any, session_id: str) -> None:
    chain = _chain(make_sync_store, max_messages=4, window_messages=4)
    replies = [chain.invoke({"input": f"turn {n}"}, config=_config(session_id)).content for n in range(5)]
    assert replies[-1] == "I remember 4 messages"


async def test_two_concurrent_runs_on_one_session_lose_nothing(make_sync_store: Any, session_id: str) -> None:
    # Two stores: two connection pools and loops, as two processes would have.
    first, second = (TurnstateChatMessageHistory(make_sync_store(), session_id) for _ in range(2))

    async def run(history: TurnstateChatMessageHistory, name: str) -> None:
        for n in range(10):
            await history.aadd_messages([HumanMessage(f"{name} {n}"), AIMessage(f"{name} reply {n}")])

    await asyncio.gather(run(first, "a"), run(second, "b"))
    contents = [str(m.content) for m in await first.aget_messages()]
    assert len(contents) == 40
    for name in ("a", "b"):
        mine = [c for c in contents if c.startswith(f"{name} ")]
        assert mine == [text for n in range(10) for text in (f"{name} {n}", f"{name} reply {n}")]
