"""Each adapter answers like its framework's own reference implementation, call for call.

None of the three frameworks ships a standard test suite for these interfaces (langchain-tests
covers models, embeddings, tools, retrievers, caches and stores, not chat histories), so the
reference is each framework's in-process implementation: the same script of calls runs on both,
and every answer must match.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("agents")
pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

from agents import SQLiteSession
from agents.items import TResponseInputItem
from langchain_core.chat_history import BaseChatMessageHistory, InMemoryChatMessageHistory
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.core.storage.chat_store import BaseChatStore, SimpleChatStore

from tests.test_integrations_openai_agents import TOOL_RUN
from turnstate import Store
from turnstate.integrations.langchain import TurnstateChatMessageHistory
from turnstate.integrations.llamaindex import TurnstateChatStore
from turnstate.integrations.openai_agents import TurnstateSession


async def test_agents_session_answers_like_sqlite_session(store: Store, session_id: str) -> None:
    async def script(session: Any) -> list[Any]:
        answers: list[Any] = []
        for item in TOOL_RUN:
            await session.add_items([item])
        await session.add_items([{"role": "user", "content": "and tomorrow?"}, {"role": "assistant", "content": "sun"}])
        answers += [await session.get_items(), await session.get_items(limit=3), await session.get_items(limit=0)]
        answers += [await session.pop_item(), await session.pop_item(), await session.get_items(limit=2)]
        await session.clear_session()
        answers += [await session.get_items(), await session.pop_item()]
        return answers

    extra: list[TResponseInputItem] = [{"role": "user", "content": "x"}]
    reference = SQLiteSession(session_id)
    assert await script(TurnstateSession(session_id, store)) == await script(reference)
    await reference.add_items(extra)  # both still usable after a clear
    reference.close()


# langchain-core 1.6.4 deprecates chat histories (in favour of LangGraph's memory); they still work until 2.0.
@pytest.mark.filterwarnings("ignore::langchain_core._api.deprecation.LangChainDeprecationWarning")
def test_langchain_history_answers_like_the_in_memory_one(make_sync_store: Any, session_id: str) -> None:
    def script(history: BaseChatMessageHistory) -> list[Any]:
        history.add_messages([SystemMessage("be brief"), HumanMessage("weather?", id="h1")])
        history.add_messages(
            [AIMessage("", tool_calls=[{"name": "w", "args": {}, "id": "c1"}]), ToolMessage("rain", tool_call_id="c1")]
        )
        history.add_ai_message("It rains.")
        answers: list[Any] = [list(history.messages)]  # copies: the reference hands out its own list
        history.clear()
        answers.append(list(history.messages))
        history.add_user_message("again")
        answers.append(history.messages)
        return answers

    ours = script(TurnstateChatMessageHistory(make_sync_store(), session_id))
    assert ours == script(InMemoryChatMessageHistory())


def test_llamaindex_chat_store_answers_like_the_simple_one(make_sync_store: Any, session_id: str) -> None:
    other = f"{session_id}-b"
    say: Callable[[int], ChatMessage] = lambda n: ChatMessage(role=MessageRole.USER, content=f"m{n}")  # noqa: E731

    def script(chat_store: BaseChatStore) -> list[Any]:
        chat_store.set_messages(session_id, [say(n) for n in range(3)])
        chat_store.add_message(session_id, ChatMessage(role=MessageRole.ASSISTANT, content="ok"))
        chat_store.add_message(other, say(9))
        # copies: SimpleChatStore hands out its own lists, which the later calls change
        answers: list[Any] = [list(chat_store.get_messages(session_id)), sorted(chat_store.get_keys())]
        answers += [chat_store.delete_message(session_id, 1), chat_store.delete_message(session_id, 7)]
        answers += [chat_store.delete_last_message(session_id), list(chat_store.get_messages(session_id))]
        answers += [chat_store.delete_messages(other), chat_store.get_messages(other), chat_store.get_keys()]
        chat_store.set_messages(session_id, [say(5)])
        answers.append(chat_store.get_messages(session_id))
        return answers

    assert script(TurnstateChatStore(make_sync_store())) == script(SimpleChatStore())
