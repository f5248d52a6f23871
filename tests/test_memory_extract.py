"""Summaries and fact extraction: offline (extractive, patterns) and through a model (the stand-in)."""

from __future__ import annotations

import json
from typing import Any

from turnstate.llm.openai import OpenAIModel
from turnstate.memory.extractor import FactCandidate, ModelExtractor, PatternExtractor, parse_facts
from turnstate.memory.summarizer import ExtractiveSummarizer, ModelSummarizer
from turnstate.types import Message


def msg(seq: int, role: str, content: str) -> Message:
    return Message(seq=seq, id=f"m{seq}", role=role, content=content, tokens=1, ts=1_000 * seq)  # type: ignore[arg-type]


CONVERSATION = [
    msg(1, "user", "Hi! My name is Ada Lovelace. I live in London, near the river."),
    msg(2, "assistant", "Nice to meet you, Ada. I live in the cloud."),
    msg(3, "user", "My favourite food is sushi. I'm allergic to peanuts."),
    msg(4, "user", "Actually I have moved to Porto. I work as an engineer."),
]


async def test_patterns_find_first_person_facts_and_later_ones_win() -> None:
    facts = await PatternExtractor().extract(CONVERSATION)
    by_key = {f.key: f.text for f in facts}
    assert by_key["user.name"] == "The user's name is Ada Lovelace."
    assert by_key["user.location"] == "The user lives in Porto."  # the later statement wins
    assert by_key["user.favourite_food"] == "The user's favourite food is sushi."
    assert by_key["user.allergy.peanuts"] == "The user is allergic to peanuts."
    assert by_key["user.occupation"] == "The user works as engineer."
    assert not any("cloud" in text for text in by_key.values())  # the assistant's words are not facts


async def test_extractive_summary_keeps_user_statements_within_a_bound() -> None:
    summarizer = ExtractiveSummarizer(max_chars=120)
    first = await summarizer.summarize(None, CONVERSATION[:2])
    assert first == "User: Hi!"
    longer = await summarizer.summarize(first, CONVERSATION[2:])
    assert len(longer) <= 120
    assert longer.splitlines()[-1] == "User: Actually I have moved to Porto."


def test_model_answers_are_parsed_defensively() -> None:
    answer = 'Sure! [{"key": "user.name", "fact": "The user is Ada."}, {"key": "Bad Key", "fact": "x"}, 3]'
    assert parse_facts(answer) == [FactCandidate("user.name", "The user is Ada.")]
    assert parse_facts("no json here") == []
    assert parse_facts("[{broken") == []


async def test_a_model_summarizes_and_extracts_through_the_openai_api(standin: Any) -> None:
    model = OpenAIModel("m", api_key="sk-x", base_url=standin.base_url, max_retries=0)
    try:
        standin.reset(reply="Ada lives in Porto and likes sushi.")
        summary = await ModelSummarizer(model).summarize("Earlier: greetings.", CONVERSATION)
        assert summary == "Ada lives in Porto and likes sushi."
        sent = standin.requests[-1].messages
        assert (
            "Earlier: greetings." in sent[1]["content"]
            and "user: Actually I have moved to Porto." in sent[1]["content"]
        )
        standin.reset(reply=json.dumps([{"key": "user.city", "fact": "The user lives in Porto."}]))
        said = CONVERSATION[-1].ts  # the model sees the batch: its facts are dated by its last message
        assert await ModelExtractor(model).extract(CONVERSATION) == [
            FactCandidate("user.city", "The user lives in Porto.", said)
        ]
        standin.fail(500, times=5)
        fallback = await ModelExtractor(model).extract(CONVERSATION)
        assert FactCandidate("user.name", "The user's name is Ada Lovelace.", CONVERSATION[0].ts) in fallback
    finally:
        await model.aclose()
