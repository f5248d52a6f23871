"""TurnstateSaver: LangGraph's own conformance suite and a real StateGraph with an interrupt."""

from __future__ import annotations

import operator
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from turnstate.integrations.langgraph import TurnstateSaver


async def test_conformance_suite(make_store: Any) -> None:
    @checkpointer_test(name="TurnstateSaver")
    async def saver() -> AsyncIterator[TurnstateSaver]:
        yield TurnstateSaver(make_store(key_prefix=f"t{uuid.uuid4().hex[:12]}"))

    report = await validate(saver)
    report.print_report()
    assert report.passed_all_base()
    assert report.passed_all()
    assert {name for name, r in report.results.items() if r.detected and r.passed} >= {
        "put",
        "put_writes",
        "get_tuple",
        "list",
        "delete_thread",
        "copy_thread",
        "delete_for_runs",
        "prune",
    }


def test_sync_methods(store: Any) -> None:
    saver = TurnstateSaver(store)
    graph = _graph(saver)
    config: Any = {"configurable": {"thread_id": "sync thread/é"}}
    assert "__interrupt__" in graph.invoke({"log": []}, config)
    assert graph.invoke(Command(resume="ok"), config)["log"] == ["draft", "approved:ok", "published"]
    assert len(list(saver.list(config, limit=2))) == 2
    saver.delete_thread("sync thread/é")
    assert saver.get_tuple(config) is None
    saver.close()


async def test_bad_config_raises(store: Any) -> None:
    saver = TurnstateSaver(store)
    with pytest.raises(ValueError, match="thread_id"):
        await saver.aget_tuple({"configurable": {}})
    assert await saver.aget_tuple({"configurable": {"thread_id": "t", "checkpoint_id": "nope"}}) is None
    config: Any = {"configurable": {"thread_id": "big", "checkpoint_ns": "", "checkpoint_id": "c1"}}
    with pytest.raises(ValueError, match="limit"):
        await saver.aput_writes(config, [("ch", "x" * (store.settings.max_content_bytes + 1))], "task")
    assert await store.client.exists(*saver._keys("big")) == 0


class State(TypedDict):
    log: Annotated[list[str], operator.add]


def _graph(saver: TurnstateSaver) -> Any:
    def draft(state: State) -> dict[str, list[str]]:
        return {"log": ["draft"]}

    def review(state: State) -> dict[str, list[str]]:
        return {"log": [f"approved:{interrupt('approve?')}"]}

    def publish(state: State) -> dict[str, list[str]]:
        return {"log": ["published"]}

    g = StateGraph(State)
    g.add_node("draft", draft)
    g.add_node("review", review)
    g.add_node("publish", publish)
    g.add_edge(START, "draft")
    g.add_edge("draft", "review")
    g.add_edge("review", "publish")
    g.add_edge("publish", END)
    return g.compile(checkpointer=saver)


async def test_state_graph_interrupt_resume_time_travel(store: Any) -> None:
    graph = _graph(TurnstateSaver(store))
    config: Any = {"configurable": {"thread_id": "agent-1"}}
    first = await graph.ainvoke({"log": []}, config)
    assert "__interrupt__" in first
    assert (await graph.aget_state(config)).next == ("review",)
    done = await graph.ainvoke(Command(resume="yes"), config)
    assert done["log"] == ["draft", "approved:yes", "published"]
    history = [s async for s in graph.aget_state_history(config)]
    before_review = next(s for s in history if s.next == ("review",))
    fork = await graph.aupdate_state(before_review.config, {"log": ["edited"]})  # time travel: fork the past
    assert "__interrupt__" in await graph.ainvoke(None, fork)
    again = await graph.ainvoke(Command(resume="later"), config)
    assert again["log"] == ["draft", "edited", "approved:later", "published"]
    assert len([s async for s in graph.aget_state_history(config)]) > len(history)
