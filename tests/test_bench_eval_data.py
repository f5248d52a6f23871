"""The memory evaluation's data set: what it holds, and the checks that keep an edit from bending it."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest

from turnstate.bench.eval_data import DATA_FILE, load_eval_data, parse_eval_data
from turnstate.errors import InvalidInput


def raw_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resources.files("turnstate.bench").joinpath(DATA_FILE).read_text())
    return data


def test_the_data_set_has_users_sessions_replacements_and_questions() -> None:
    data = load_eval_data(closing_turns=2)
    assert len(data.users) >= 5 and data.questions >= 50
    assert all(len(u.sessions) >= 3 for u in data.users)
    facts = [f for u in data.users for f in u.facts.values()]
    assert sum(f.supersedes is not None for f in facts) >= 5  # facts a later session replaces
    assert {"name", "city", "job", "allergy", "pet", "decision", "preference"} <= {f.category for f in facts}
    small_talk = [s for u in data.users for session in u.sessions for s in session if not s.plants]
    assert len(small_talk) >= 50  # distractors between the facts
    assert data.subset(["sam"]).users[0].id == "sam"


def test_a_planted_fact_matches_by_key_family_and_value() -> None:
    fact = load_eval_data().users[0].facts["maya.shellfish"]
    assert fact.matches("user.allergy.shellfish", "The user is allergic to Shellfish.")
    assert not fact.matches("user.allergyx", "The user is allergic to shellfish.")
    assert not fact.matches("user.allergy.nuts", "The user is allergic to nuts.")


def edited(change: Any) -> dict[str, Any]:
    raw = copy.deepcopy(raw_data())
    change(raw["users"][0])
    return raw


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        # a fact said in a session's last turns never leaves the window, so the worker never sees it
        (lambda u: u["sessions"][0].__setitem__(-1, {"say": "My name is Maya Okafor.", "plants": ["name"]}), "last"),
        (lambda u: u["sessions"][0][0].__setitem__("say", "Hi there!"), "says its value"),
        (lambda u: u["questions"].append({"ask": "Where did I live?", "expects": ["leeds"]}), "still true"),
        (lambda u: u["facts"]["leeds"].__setitem__("supersedes", "name"), "earlier session"),
        (lambda u: u["facts"].__setitem__("extra", {"key": "user.x", "value": "x", "category": "x"}), "never planted"),
    ],
)
def test_edits_that_would_bend_the_evaluation_are_refused(change: Any, complaint: str) -> None:
    with pytest.raises(InvalidInput, match=complaint):
        parse_eval_data(edited(change), closing_turns=2)
