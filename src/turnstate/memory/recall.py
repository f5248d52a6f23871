"""Recall: the user's facts most relevant to their new message, found while the turn begins.

Recall runs concurrently with the turn's Redis round trip and under a time budget: a recall
that fails or is late is skipped (logged and counted), and the turn goes on without facts.
The facts it returns fit a token budget, so the prompt stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from turnstate.errors import TurnstateError
from turnstate.memory.embedder import Embedder
from turnstate.memory.facts import Fact
from turnstate.memory.vectors import FactStore
from turnstate.tokens import TokenCounter

log = logging.getLogger(__name__)


@dataclass
class RecallStats:
    """Counters for metrics: recalls done, and those skipped because they failed or were late."""

    done: int = 0
    failed: int = 0
    late: int = 0


@dataclass
class Recall:
    facts: FactStore
    embedder: Embedder
    tokens: TokenCounter
    k: int = 5
    budget_seconds: float = 0.25
    max_tokens: int = 400
    stats: RecallStats = field(default_factory=RecallStats)

    async def recall(self, tenant: str, user_id: str, text: str) -> list[Fact]:
        """Up to `k` current facts of this user, most relevant first; [] if recall fails or is late."""
        try:
            found = await asyncio.wait_for(self._search(tenant, user_id, text), self.budget_seconds)
        except TimeoutError:
            self.stats.late += 1
            log.warning("recall for %s/%s took longer than %.3f s: skipped", tenant, user_id, self.budget_seconds)
            return []
        except (TurnstateError, OSError) as exc:
            self.stats.failed += 1
            log.warning("recall for %s/%s failed: %s", tenant, user_id, exc)
            return []
        self.stats.done += 1
        return self._within_budget(found)

    async def _search(self, tenant: str, user_id: str, text: str) -> list[Fact]:
        query = (await self.embedder.embed_queries([text]))[0]
        return [scored.fact for scored in await self.facts.recall(tenant, user_id, query, self.k)]

    def _within_budget(self, facts: list[Fact]) -> list[Fact]:
        kept, used = [], 0
        for fact in facts:
            used += self.tokens.count(fact.text)
            if used > self.max_tokens:
                break
            kept.append(fact)
        return kept
