"""Everything a process needs for chat turns, opened together and closed in reverse: the store,
the model, and (unless turned off) long-term memory with its job queue and, if asked, a worker."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass

from turnstate.chat import Chat
from turnstate.config import Settings
from turnstate.llm import model_from_settings
from turnstate.memory.recall import Recall
from turnstate.store import open_store
from turnstate.worker import Memory, SummaryScheduler, memory_docket, open_memory, serving_jobs


@dataclass
class Runtime:
    chat: Chat
    memory: Memory | None


async def open_runtime(settings: Settings, stack: AsyncExitStack, *, worker: bool | None = None) -> Runtime:
    """Open the parts on `stack`; `worker` (default: the setting) runs memory jobs in this process."""
    store = await open_store(settings=settings)
    stack.push_async_callback(store.aclose)
    model = model_from_settings(settings)
    stack.push_async_callback(model.aclose)
    memory, recall, scheduler = None, None, None
    if settings.memory:
        memory = await stack.enter_async_context(open_memory(settings, store, model))
        docket = await stack.enter_async_context(memory_docket(settings, store))
        recall = Recall(
            memory.facts, memory.embedder, store.tokens, k=settings.recall_k,
            budget_seconds=settings.recall_budget_seconds, max_tokens=settings.recall_tokens,
        )  # fmt: skip
        scheduler = SummaryScheduler(docket)
        if settings.worker_in_service if worker is None else worker:
            await stack.enter_async_context(serving_jobs(settings, docket, memory))
    chat = Chat(store, model, system_prompt=settings.system_prompt, recall=recall, schedule_summary=scheduler)
    stack.push_async_callback(chat.drain)
    return Runtime(chat, memory)
