"""The offline model: instant, deterministic, honest about being offline, and a mirror of its context."""

from __future__ import annotations

from turnstate.llm import (
    FACTS_MARKER,
    SUMMARY_MARKER,
    ChatModel,
    OfflineModel,
    PromptMessage,
    complete,
    summary_message,
)
from turnstate.llm.offline import offline_reply

SUMMARY = "The user is planning a week in Lisbon with two children and a small budget for museums and food."
PROMPT: list[PromptMessage] = [
    {"role": "system", "content": "You are a helpful assistant."},
    summary_message(SUMMARY),
    {"role": "user", "content": "Where should we stay?"},
    {"role": "assistant", "content": "Alfama or Baixa."},
    {"role": "user", "content": "Which one is  quieter\nat night?"},
]


async def test_reply_says_it_is_offline_and_reflects_the_context() -> None:
    reply = await complete(OfflineModel(), PROMPT)
    assert "offline model (no LLM is configured)" in reply
    assert "3 messages in the window" in reply
    assert 'a summary starting "The user is planning a week in Lisbon with two children and…"' in reply
    assert 'Your latest message: "Which one is quieter at night?"' in reply


async def test_without_summary_or_user_message() -> None:
    reply = await complete(OfflineModel(), [{"role": "assistant", "content": "Welcome back."}])
    assert "1 message in the window and no summary." in reply
    assert "There was no user message." in reply
    assert await complete(OfflineModel(), []) != ""


async def test_streams_word_by_word_and_is_deterministic() -> None:
    model = OfflineModel()
    deltas = [delta async for delta in model.stream(PROMPT)]
    assert len(deltas) > 10
    assert all(delta.strip() for delta in deltas)
    assert "".join(deltas) == await complete(model, PROMPT) == await complete(OfflineModel(), PROMPT)
    await model.aclose()


async def test_a_long_message_is_quoted_in_part() -> None:
    reply = await complete(OfflineModel(), [{"role": "user", "content": "word " * 500}])
    assert reply.count("word") == 40 and "…" in reply


def test_it_is_a_chat_model() -> None:
    model: ChatModel = OfflineModel()
    assert model.name == "offline"
    assert summary_message("x") == {"role": "system", "content": f"{SUMMARY_MARKER} x"}


async def test_recalled_facts_are_named_in_the_reply() -> None:
    reply = offline_reply(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "system", "content": f"{FACTS_MARKER}\n- The user likes tea.\n- The user lives in Oslo."},
            {"role": "user", "content": "hi"},
        ]
    )
    assert "It recalled 2 facts about you: The user likes tea. The user lives in Oslo." in reply
