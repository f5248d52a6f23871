"""Durable facts about the user, pulled from the messages a summary covers.

A fact is a key ("user.name", "user.favourite_food") and one sentence. The key is what makes a
newer fact supersede an older one ("I moved to Porto" replaces "The user lives in Lisbon").
With a real model the model extracts them (prompt in prompts.py); offline, a few patterns catch
the common first-person statements.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from turnstate.errors import ModelError
from turnstate.llm import ChatModel, OfflineModel, complete
from turnstate.memory import prompts
from turnstate.types import Message

log = logging.getLogger(__name__)

KEY = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+){0,3}")
MAX_FACT_CHARS = 300


@dataclass(frozen=True, slots=True)
class FactCandidate:
    key: str
    text: str
    said_ms: int | None = None  # when the user said it (the message's server time): newer supersedes older


class Extractor(Protocol):
    async def extract(self, messages: Sequence[Message]) -> list[FactCandidate]: ...


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "x"


def _clean(value: str) -> str:
    return re.split(r"[.!?;\n]| but | and then ", value, maxsplit=1)[0].strip(" ,")


Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], FactCandidate]]
RULES: list[Rule] = [
    (
        re.compile(r"\b(?i:my name is) ([A-Z][\w'-]+(?: [A-Z][\w'-]+)?)"),
        lambda m: FactCandidate("user.name", f"The user's name is {m[1]}."),
    ),
    (
        re.compile(r"\bI(?: now)? live in ([A-Z][^.!?,;]*)"),
        lambda m: FactCandidate("user.location", f"The user lives in {_clean(m[1])}."),
    ),
    (
        re.compile(r"\bI(?:'ve| have)? moved to ([A-Z][^.!?,;]*)"),
        lambda m: FactCandidate("user.location", f"The user lives in {_clean(m[1])}."),
    ),
    (
        re.compile(r"\bmy favou?rite ([a-z ]{2,30}?) is ([^.!?;]+)", re.IGNORECASE),
        lambda m: FactCandidate(f"user.favourite_{_slug(m[1])}", f"The user's favourite {m[1]} is {_clean(m[2])}."),
    ),
    (
        re.compile(r"\bI(?:'m| am) allergic to ([^.!?;]+)", re.IGNORECASE),
        lambda m: FactCandidate(f"user.allergy.{_slug(_clean(m[1]))}", f"The user is allergic to {_clean(m[1])}."),
    ),
    (
        re.compile(r"\bI (?:really )?(?:love|like|prefer|enjoy) ([^.!?;]+)", re.IGNORECASE),
        lambda m: FactCandidate(f"user.likes.{_slug(_clean(m[1]))}", f"The user likes {_clean(m[1])}."),
    ),
    (
        re.compile(r"\bI work as (?:an? )?([^.!?;,]+)", re.IGNORECASE),
        lambda m: FactCandidate("user.occupation", f"The user works as {_clean(m[1])}."),
    ),
    (
        re.compile(r"\bI(?:'ve| have)? decided to ([^.!?;]+)", re.IGNORECASE),
        lambda m: FactCandidate(f"user.decision.{_slug(_clean(m[1]))}", f"The user decided to {_clean(m[1])}."),
    ),
]


class PatternExtractor:
    """Offline: first-person statements matched by a few patterns, in the order they were said."""

    async def extract(self, messages: Sequence[Message]) -> list[FactCandidate]:
        found: dict[str, FactCandidate] = {}
        for m in messages:
            if m.role != "user":
                continue
            for pattern, make in RULES:
                for match in pattern.finditer(m.content):
                    fact = replace(make(match), said_ms=m.ts)
                    found.pop(fact.key, None)  # a later statement of the same key wins
                    found[fact.key] = fact
        return list(found.values())


def parse_facts(text: str) -> list[FactCandidate]:
    """The model's JSON answer as candidates; malformed items are skipped, never trusted."""
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end < start:
        return []
    try:
        items = json.loads(text[start : end + 1])
    except ValueError:
        return []
    facts = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        key, fact = item.get("key"), item.get("fact")
        if isinstance(key, str) and isinstance(fact, str) and KEY.fullmatch(key) and fact.strip():
            facts.append(FactCandidate(key, fact.strip()[:MAX_FACT_CHARS]))
    return facts


class ModelExtractor:
    """A chat model extracts the facts; if its answer is not usable JSON, the patterns still run."""

    def __init__(self, model: ChatModel) -> None:
        self.model = model
        self.fallback = PatternExtractor()

    async def extract(self, messages: Sequence[Message]) -> list[FactCandidate]:
        lines = [(m.role, m.content) for m in messages]
        try:
            answer = await complete(
                self.model,
                [
                    {"role": "system", "content": prompts.EXTRACT_SYSTEM},
                    {"role": "user", "content": prompts.transcript(lines)},
                ],
            )
        except ModelError as exc:
            log.warning("fact extraction by %s failed (%s); using patterns", self.model.name, exc.kind)
            return await self.fallback.extract(messages)
        said = messages[-1].ts if messages else None  # the model sees the batch, not where each fact came from
        return [replace(f, said_ms=said) for f in parse_facts(answer)] or await self.fallback.extract(messages)


def extractor_for(model: ChatModel) -> Extractor:
    return PatternExtractor() if isinstance(model, OfflineModel) else ModelExtractor(model)
