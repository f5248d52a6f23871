"""A model that needs no network or key, so demos, tests and first runs work before an LLM is configured.

Its reply is deterministic and describes the context it was given, which makes it a readable check
that the window and the summary reach the model.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence

from turnstate.llm.base import FACTS_MARKER, SUMMARY_MARKER, PromptMessage

OFFLINE_NOTICE = "This reply comes from the offline model (no LLM is configured)."
HINT = "Set OPENAI_API_KEY or OPENAI_BASE_URL to get real answers."
SUMMARY_WORDS = 12
QUOTE_WORDS = 40
_WORD = re.compile(r"\S+\s*")


class OfflineModel:
    """Answers instantly and always the same way for the same messages."""

    name = "offline"

    async def stream(self, messages: Sequence[PromptMessage]) -> AsyncIterator[str]:
        """The reply word by word, like a real model's deltas."""
        for word in _WORD.findall(offline_reply(messages)):
            yield word

    async def aclose(self) -> None:
        """Nothing to release."""


def offline_reply(messages: Sequence[PromptMessage]) -> str:
    """Say plainly that no LLM answered, and what context it would have had."""
    summary = next(
        (m["content"] for m in messages if m["role"] == "system" and m["content"].startswith(SUMMARY_MARKER)), None
    )
    window = sum(1 for m in messages if m["role"] != "system")
    latest = next((m["content"] for m in reversed(messages) if m["role"] == "user"), None)
    noun = "message" if window == 1 else "messages"
    parts = [OFFLINE_NOTICE, f"It was given {window} {noun} in the window"]
    if summary is None:
        parts[-1] += " and no summary."
    else:
        parts[-1] += f' and a summary starting "{_first_words(summary[len(SUMMARY_MARKER) :], SUMMARY_WORDS)}".'
    facts = next(
        (m["content"] for m in messages if m["role"] == "system" and m["content"].startswith(FACTS_MARKER)), ""
    )
    recalled = [line[2:] for line in facts.splitlines() if line.startswith("- ")]
    if recalled:
        parts.append(
            f"It recalled {len(recalled)} fact{'s' if len(recalled) > 1 else ''} about you: {' '.join(recalled)}"
        )
    if latest is None:
        parts.append("There was no user message.")
    else:
        parts.append(f'Your latest message: "{_first_words(latest, QUOTE_WORDS)}".')
    parts.append(HINT)
    return " ".join(parts)


def _first_words(text: str, limit: int) -> str:
    words = text.split()
    return " ".join(words[:limit]) + ("…" if len(words) > limit else "")
