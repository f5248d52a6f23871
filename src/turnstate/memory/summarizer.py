"""Rolling summaries: fold messages that leave the window into the session's summary.

With a real model the summary is written by the model (prompt in prompts.py); with the offline
model it is extractive: the user's own statements, newest kept when the summary must shrink.
Either way the result is bounded, so the summary never crowds the window out of the prompt.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from turnstate.llm import ChatModel, OfflineModel, complete
from turnstate.memory import prompts
from turnstate.types import Message

MAX_SUMMARY_CHARS = 1_500
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


class Summarizer(Protocol):
    async def summarize(self, previous: str | None, messages: Sequence[Message]) -> str: ...


def first_sentence(text: str, limit: int = 160) -> str:
    sentence = _SENTENCE.split(" ".join(text.split()), maxsplit=1)[0]
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


class ExtractiveSummarizer:
    """Offline: one line per user message ("User: <first sentence>"), oldest dropped past the cap."""

    def __init__(self, max_chars: int = MAX_SUMMARY_CHARS) -> None:
        self.max_chars = max_chars

    async def summarize(self, previous: str | None, messages: Sequence[Message]) -> str:
        lines = previous.splitlines() if previous else []
        lines += [f"User: {first_sentence(m.content)}" for m in messages if m.role == "user"]
        while len(lines) > 1 and sum(len(line) + 1 for line in lines) > self.max_chars:
            lines.pop(0)
        return "\n".join(lines) or "(nothing said by the user yet)"


class ModelSummarizer:
    """A chat model folds the new messages into the previous summary."""

    def __init__(self, model: ChatModel, max_chars: int = MAX_SUMMARY_CHARS) -> None:
        self.model = model
        self.max_chars = max_chars

    async def summarize(self, previous: str | None, messages: Sequence[Message]) -> str:
        body = f"Previous summary:\n{previous or '(none)'}\n\nNew messages:\n"
        body += prompts.transcript([(m.role, m.content) for m in messages])
        summary = await complete(
            self.model, [{"role": "system", "content": prompts.SUMMARIZE_SYSTEM}, {"role": "user", "content": body}]
        )
        summary = summary.strip()
        return summary if len(summary) <= self.max_chars else summary[: self.max_chars - 1].rstrip() + "…"


def summarizer_for(model: ChatModel) -> Summarizer:
    """Extractive with the offline model (it cannot summarise), else the model itself."""
    return ExtractiveSummarizer() if isinstance(model, OfflineModel) else ModelSummarizer(model)
