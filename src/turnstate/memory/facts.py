"""A remembered fact, and the rules its parts follow before they reach the database."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt

from turnstate.errors import InvalidInput

Embedding: TypeAlias = Sequence[float] | npt.NDArray[np.floating[Any]]
"""A vector as the embedders return it (a numpy row) or as plain numbers."""

MAX_KEY_CHARS = 200
MAX_TEXT_CHARS = 2_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Fact:
    """One remembered fact; `superseded_at` and `superseded_by` are set once a newer fact replaced it."""

    id: int
    tenant: str
    user_id: str
    session_id: str | None  # the session it was learned in
    key: str
    text: str
    first_seq: int | None  # the messages it was learned from
    last_seq: int | None
    created_at: datetime
    superseded_at: datetime | None
    superseded_by: int | None

    @property
    def current(self) -> bool:
        return self.superseded_at is None


_FIELDS = fields(Fact)


class ScoredFact(NamedTuple):
    """A recalled fact and its cosine similarity to the query (1 is identical, 0 unrelated)."""

    fact: Fact
    score: float


COLUMNS = ", ".join(field.name for field in _FIELDS)
"""The facts table's columns in Fact's order, for SELECT lists that fact_from_row reads."""


def fact_from_row(row: Sequence[Any]) -> Fact:
    return Fact(*row[: len(_FIELDS)])


def normalised(text: str) -> str:
    """Case, spacing and a final full stop do not make a different fact."""
    return " ".join(text.split()).casefold().rstrip(".!").rstrip()


def checked_key(key: object) -> str:
    if (
        not isinstance(key, str)
        or not key
        or key != key.strip()
        or len(key) > MAX_KEY_CHARS
        or _CONTROL.search(key) is not None
    ):
        raise InvalidInput(
            f"invalid fact key {repr(key)[:40]}: 1-{MAX_KEY_CHARS} characters, no control characters or edge spaces"
        )
    return key


def checked_text(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("fact text must be a non-blank string")
    text = text.strip()
    if len(text) > MAX_TEXT_CHARS or "\x00" in text:
        raise InvalidInput(f"fact text must be at most {MAX_TEXT_CHARS} characters, without NUL")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("fact text is not valid Unicode (it holds a lone surrogate)") from None
    return text


def checked_range(seq_range: tuple[int, int] | None) -> tuple[int | None, int | None]:
    if seq_range is None:
        return None, None
    pair = tuple(seq_range) if isinstance(seq_range, (tuple, list)) else ()
    if (
        len(pair) != 2
        or any(isinstance(n, bool) or not isinstance(n, int) for n in pair)
        or not 0 <= pair[0] <= pair[1]
    ):
        raise InvalidInput(f"seq_range must be two integers 0 <= first <= last, not {seq_range!r}"[:120])
    return pair[0], pair[1]


def checked_vector(embedding: Embedding, dim: int, what: str) -> npt.NDArray[np.float32]:
    """`embedding` as float32, refusing the wrong length and vectors with no direction to compare."""
    try:
        array = np.asarray(embedding, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidInput(f"{what} must be {dim} numbers") from None
    if array.shape != (dim,):
        raise InvalidInput(f"{what} has shape {array.shape}; the store holds {dim}-dimensional vectors")
    norm = float(np.linalg.norm(array))
    if not np.isfinite(norm) or norm == 0.0:
        raise InvalidInput(f"{what} must be finite and not all zeros (its direction is what is compared)")
    return array
