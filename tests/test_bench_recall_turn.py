"""The recall part of `turnstate bench run`: its turns really recall the seeded facts into the prompt.

Real Valkey, real PostgreSQL with pgvector, the real offline embedder; only the model is left out.
"""

from __future__ import annotations

from typing import Any

import psycopg

from turnstate.bench.recall_turn import fact_sentences, facts_in, recall_setup
from turnstate.bench.results import BenchConfig
from turnstate.llm import FACTS_MARKER


async def test_recall_on_puts_the_users_facts_in_the_prompt_and_times_both_parts(
    make_store: Any, database_url: str, key_prefix: str
) -> None:
    store = make_store(window_messages=4, max_messages=8)
    config = BenchConfig.short_run(recall_facts_per_user=12, recall_other_facts=100)
    async with recall_setup(database_url, store, key_prefix, config) as setup:
        assert [(v.pattern.name, v.pattern.chat.recall is not None) for v in setup.variants] == [
            ("turnstate-chat/questions", False),
            ("turnstate-chat+recall/questions", True),
        ]
        off, on = setup.variants
        for v in setup.variants:
            handle = await v.pattern.begin(v.session, v.texts.user(0), "m0")
            await v.pattern.finish(handle, v.texts.reply(0))
        assert facts_in(off.pattern.model.prompt) == 0 and off.pattern.tally.with_facts == 0
        [facts] = [m["content"] for m in on.pattern.model.prompt if m["content"].startswith(FACTS_MARKER)]
        recalled = [line.removeprefix("- ") for line in facts.splitlines()[1:]]
        assert len(recalled) == 5 and set(recalled) <= set(fact_sentences(12))  # the user's own facts
        assert (on.pattern.tally.turns, on.pattern.tally.with_facts, on.pattern.tally.facts) == (1, 1, 5)
        setup.collect()
        [result_off, result_on] = [v.result() for v in setup.variants]
        assert result_off.embed is None and result_off.query is None
        assert result_on.embed is not None and result_on.query is not None
        assert result_on.embed.samples == result_on.query.samples == 1 and result_on.late_or_failed == 0
        schema = setup.facts.schema
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", [schema])
        assert await cur.fetchone() == (0,)  # the seeded facts went with their schema
