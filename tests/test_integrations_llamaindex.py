"""LlamaIndex's memory on turnstate's chat store, against the real test server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.core.memory import ChatMemoryBuffer

from turnstate.integrations.llamaindex import TurnstateChatStore


def _memory(chat_store: TurnstateChatStore, key: str) -> ChatMemoryBuffer:
    # A whitespace tokenizer: the default one fetches tiktoken's vocabulary from the network.
    return ChatMemoryBuffer.from_defaults(
        token_limit=10_000, tokenizer_fn=str.split, chat_store=chat_store, chat_store_key=key
    )


def test_chat_memory_buffer_remembers_across_instances(make_sync_store: Any, session_id: str) -> None:
    chat_store = TurnstateChatStore(make_sync_store())
    for n in range(3):  # a fresh memory per turn, as a stateless replica would build
        memory = _memory(chat_store, session_id)
        memory.put(ChatMessage(role=MessageRole.USER, content=f"question {n}"))
        memory.put(ChatMessage(role=MessageRole.ASSISTANT, content=f"I remember {len(memory.get()) - 1} messages"))
    got = _memory(chat_store, session_id).get()
    assert [m.content for m in got][-2:] == ["question 2", "I remember 4 messages"]
    assert session_id in chat_store.get_keys()


async def test_messages_round_trip_with_roles_and_async_methods(make_sync_store: Any, session_id: str) -> None:
    store = make_sync_store()
    chat_store = TurnstateChatStore(store)
    sent = [
        ChatMessage(role=MessageRole.SYSTEM, content="be brief"),
        ChatMessage(role=MessageRole.USER, content="weather?"),
        ChatMessage(role=MessageRole.ASSISTANT, content="", additional_kwargs={"tool_calls": [{"id": "c1"}]}),
        ChatMessage(role=MessageRole.TOOL, content="rain", additional_kwargs={"tool_call_id": "c1"}),
    ]
    await chat_store.aset_messages(session_id, sent)
    assert await chat_store.aget_messages(session_id) == sent
    assert [m.role for m in store.history(session_id)] == ["system", "user", "assistant", "tool"]
    memory = _memory(chat_store, session_id)
    await memory.aput(ChatMessage(role=MessageRole.ASSISTANT, content="It rains."))
    assert [m.content for m in await memory.aget_all()][-1] == "It rains."
    assert await chat_store.adelete_messages(session_id) == [*sent, ChatMessage(role="assistant", content="It rains.")]
    assert chat_store.get_messages(session_id) == []
    assert session_id not in await chat_store.aget_keys()
    assert chat_store.delete_last_message(session_id) is None


async def test_single_messages_are_deleted_by_position(make_sync_store: Any, session_id: str) -> None:
    chat_store = TurnstateChatStore(make_sync_store())
    sent = [ChatMessage(role=MessageRole.USER, content=f"m{n}") for n in range(5)]
    chat_store.set_messages(session_id, sent)
    assert chat_store.delete_last_message(session_id) == sent[4]
    assert await chat_store.adelete_last_message(session_id) == sent[3]
    assert chat_store.delete_message(session_id, 1) == sent[1]
    assert await chat_store.adelete_message(session_id, -1) == sent[2]
    assert chat_store.delete_message(session_id, 5) is None
    assert chat_store.get_messages(session_id) == [sent[0]]
    chat_store.add_message(session_id, sent[4])
    assert chat_store.get_messages(session_id) == [sent[0], sent[4]]


def test_history_is_bounded_to_max_messages(make_sync_store: Any, session_id: str) -> None:
    memory = _memory(TurnstateChatStore(make_sync_store(max_messages=3, window_messages=3)), session_id)
    for n in range(7):
        memory.put(ChatMessage(role=MessageRole.USER, content=f"m{n}"))
    assert [m.content for m in memory.get_all()] == ["m4", "m5", "m6"]


async def test_two_concurrent_memories_on_one_key_lose_nothing(make_sync_store: Any, session_id: str) -> None:
    first, second = (_memory(TurnstateChatStore(make_sync_store()), session_id) for _ in range(2))

    async def run(memory: ChatMemoryBuffer, name: str) -> None:
        for n in range(15):
            await memory.aput(ChatMessage(role=MessageRole.USER, content=f"{name} {n}"))

    await asyncio.gather(run(first, "a"), run(second, "b"))
    contents = [str(m.content) for m in await first.aget_all()]
    assert len(contents) == 30
    for name in ("a", "b"):
        assert [c for c in contents if c.startswith(f"{name} ")] == [f"{name} {n}" for n in range(15)]
