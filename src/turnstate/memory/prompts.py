"""Every prompt the memory worker sends to a model, kept in one place."""

from __future__ import annotations

from collections.abc import Sequence

SUMMARY_WORDS = 200

SUMMARIZE_SYSTEM = (
    "You maintain the rolling summary of a conversation between a user and an assistant. "
    f"Fold the new messages into the previous summary. Keep names, preferences, decisions, open "
    f"questions and commitments; drop small talk. Write plain prose, at most {SUMMARY_WORDS} words, "
    "and answer with the summary only."
)

EXTRACT_SYSTEM = (
    "You extract durable facts about the user from a conversation: their name, where they live, "
    "preferences, constraints (allergies, budget), and decisions they made. Ignore anything said only "
    "by the assistant and anything temporary. Answer with JSON only: a list of objects "
    '{"key": "<dotted.snake_case key, e.g. user.name or user.favourite_food>", "fact": "<one short '
    'sentence in the third person>"}; answer [] when there is nothing durable.'
)


def transcript(lines: Sequence[tuple[str, str]]) -> str:
    """`role: content` lines, as the models above are shown a conversation."""
    return "\n".join(f"{role}: {content}" for role, content in lines)
