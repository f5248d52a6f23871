"""The memory evaluation's data set: users, their sessions with planted facts, and questions about them.

The data lives in memory_eval_data.json beside this module. Loading checks it, so an edit cannot
quietly make the evaluation measure something else: every planted fact is said exactly once and
its value is in the sentence that plants it, a replacement comes in a later session than what it
replaces, questions ask only about facts that are still true, and no fact is planted in a
session's closing turns (those stay in the prompt window, so the worker never sees them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from turnstate.errors import InvalidInput
from turnstate.keys import validate_id

DATA_FILE = "memory_eval_data.json"


@dataclass(frozen=True, slots=True)
class PlantedFact:
    """A fact a user states; a stored fact is it when its key is `key` (or `key.<more>`) and its text holds `value`."""

    id: str  # "<user>.<name>", unique in the data set
    key: str
    value: str
    category: str
    supersedes: str | None = None  # the id of the planted fact this one replaces

    def matches(self, key: str, text: str) -> bool:
        return (key == self.key or key.startswith(self.key + ".")) and self.value.casefold() in text.casefold()


@dataclass(frozen=True, slots=True)
class Said:
    """One user turn, and the facts it plants."""

    text: str
    plants: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    expects: tuple[str, ...]  # planted fact ids


@dataclass(frozen=True, slots=True)
class EvalUser:
    id: str
    facts: dict[str, PlantedFact]
    sessions: tuple[tuple[Said, ...], ...]
    questions: tuple[Question, ...]

    def successor(self, fact_id: str) -> PlantedFact | None:
        """The planted fact that replaces `fact_id`, if one does."""
        return next((f for f in self.facts.values() if f.supersedes == fact_id), None)


@dataclass(frozen=True, slots=True)
class EvalData:
    users: tuple[EvalUser, ...]

    def subset(self, user_ids: Iterable[str]) -> EvalData:
        """Only the named users (the tests run a tiny subset)."""
        wanted = list(user_ids)
        known = {u.id: u for u in self.users}
        missing = [u for u in wanted if u not in known]
        if missing:
            raise InvalidInput(f"no such users in the evaluation data: {', '.join(missing)}")
        return EvalData(tuple(known[u] for u in wanted))

    @property
    def questions(self) -> int:
        return sum(len(u.questions) for u in self.users)

    def texts(self) -> list[str]:
        """Every user turn, in order: realistic messages for the load benchmarks."""
        return [said.text for u in self.users for session in u.sessions for said in session]


def load_eval_data(*, closing_turns: int = 2) -> EvalData:
    """The bundled data set, checked; `closing_turns` is how many final turns of a session must plant nothing."""
    raw = json.loads(resources.files("turnstate.bench").joinpath(DATA_FILE).read_text(encoding="utf-8"))
    return parse_eval_data(raw, closing_turns=closing_turns)


def parse_eval_data(raw: dict[str, Any], *, closing_turns: int) -> EvalData:
    users = tuple(_user(item, closing_turns) for item in raw["users"])
    ids = [u.id for u in users]
    if len(ids) != len(set(ids)):
        raise InvalidInput("user ids in the evaluation data must be unique")
    return EvalData(users)


def _user(item: dict[str, Any], closing_turns: int) -> EvalUser:
    user = validate_id(item["id"], "user id")
    facts = {
        name: PlantedFact(f"{user}.{name}", f["key"], f["value"], f["category"], _qualified(user, f.get("supersedes")))
        for name, f in item["facts"].items()
    }
    by_id = {f.id: f for f in facts.values()}
    sessions = tuple(tuple(_said(turn, user) for turn in session) for session in item["sessions"])
    questions = tuple(Question(q["ask"], tuple(f"{user}.{e}" for e in q["expects"])) for q in item["questions"])
    planted_in = _check_plants(user, sessions, by_id, closing_turns)
    for fact in facts.values():
        old = fact.supersedes
        if old is not None and (old not in by_id or planted_in[old] >= planted_in[fact.id]):
            raise InvalidInput(f"{fact.id} must replace a fact planted in an earlier session, not {old}")
    replaced = {f.supersedes for f in facts.values()}
    for q in questions:
        if not q.expects or any(e not in by_id or e in replaced for e in q.expects):
            raise InvalidInput(f"{q.text!r} must expect planted facts that are still true: {q.expects}")
    return EvalUser(user, {f.id: f for f in facts.values()}, sessions, questions)


def _said(turn: str | dict[str, Any], user: str) -> Said:
    if isinstance(turn, str):
        return Said(turn)
    return Said(turn["say"], tuple(f"{user}.{name}" for name in turn["plants"]))


def _qualified(user: str, name: str | None) -> str | None:
    return None if name is None else f"{user}.{name}"


def _check_plants(
    user: str, sessions: tuple[tuple[Said, ...], ...], facts: dict[str, PlantedFact], closing_turns: int
) -> dict[str, int]:
    """Which session plants each fact; InvalidInput unless each is planted once, where the worker will see it."""
    planted_in: dict[str, int] = {}
    for number, session in enumerate(sessions):
        for position, said in enumerate(session):
            if said.plants and position >= len(session) - closing_turns:
                raise InvalidInput(f"{user} session {number + 1} plants a fact in its last {closing_turns} turns")
            for fact_id in said.plants:
                fact = facts.get(fact_id)
                if fact is None or fact_id in planted_in or fact.value.casefold() not in said.text.casefold():
                    raise InvalidInput(f"{fact_id} must be a known fact, planted once, by a turn that says its value")
                planted_in[fact_id] = number
    unplanted = set(facts) - set(planted_in)
    if unplanted:
        raise InvalidInput(f"facts never planted: {', '.join(sorted(unplanted))}")
    return planted_in
