"""Racing turns of one session, and what they did to the stored conversation.

A turn is a user message `u` and its reply `u:reply`. After a race, the stored conversation
(oldest first) is checked against the turns that were sent:

- lost: sent messages (user messages and replies) that are not stored at all;
- duplicated: extra copies (an id stored n times counts n - 1);
- misordered: stored replies whose user message is stored too, but not immediately before
  them. A serialised conversation has none; an interleaved one has the replies of racing
  turns after other turns' questions.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from turnstate.patterns import ChatPattern, Handle, reply_id


@dataclass(frozen=True, slots=True)
class RaceResult:
    """Counts of damage to a conversation; all zero when every turn was stored intact, in order."""

    lost: int
    duplicated: int
    misordered: int

    @property
    def clean(self) -> bool:
        return self.lost == self.duplicated == self.misordered == 0


def race_check(messages: Sequence[Mapping[str, Any]], user_ids: Iterable[str]) -> RaceResult:
    """Compare stored `messages` (oldest first) with the turns whose user ids were sent."""
    ids = [str(m["id"]) for m in messages]
    counts = Counter(ids)
    users = list(user_ids)
    lost = sum(counts[u] == 0 for u in users) + sum(counts[reply_id(u)] == 0 for u in users)
    duplicated = sum(n - 1 for n in counts.values())
    question_of = {reply_id(u): u for u in users if counts[u]}
    misordered = sum(
        1 for i, id_ in enumerate(ids) if id_ in question_of and (i == 0 or ids[i - 1] != question_of[id_])
    )
    return RaceResult(lost=lost, duplicated=duplicated, misordered=misordered)


@dataclass(frozen=True, slots=True)
class RaceReport:
    """A race's outcome: the damage, how much was stored, and how many prompts were stale.

    `shared_snapshots` counts turns whose prompt context (the window without their own message)
    was exactly another racing turn's: they ran on the same snapshot, blind to each other.
    """

    result: RaceResult
    stored: int
    shared_snapshots: int


def shared_snapshots(handles: Sequence[Handle]) -> int:
    contexts = Counter(tuple(m["id"] for m in h.window if m["id"] != h.message_id) for h in handles)
    return sum(n for n in contexts.values() if n > 1)


async def run_race(
    pattern: ChatPattern, session: str, *, turns: int = 16, think_seconds: float = 0.02, id_prefix: str = "race"
) -> RaceReport:
    """Start `turns` turns of one session at once, each with a simulated model call, then check."""

    async def turn(n: int) -> Handle:
        handle = await pattern.begin(session, f"question {n}", f"{id_prefix}-{n}")
        await asyncio.sleep(think_seconds)
        await pattern.finish(handle, f"answer {n}")
        return handle

    handles = await asyncio.gather(*(turn(n) for n in range(turns)))
    stored = await pattern.history(session)
    result = race_check(stored, (h.message_id for h in handles))
    return RaceReport(result=result, stored=len(stored), shared_snapshots=shared_snapshots(handles))
