"""The contract between the turn orchestrator and any chat model, kept apart so providers import no upward code."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Protocol, TypedDict

from turnstate.types import Role

SUMMARY_MARKER = "Summary of the conversation so far:"
"""How a system message carrying the rolling summary begins, so models and tools can recognise it."""

FACTS_MARKER = "Known facts about the user:"
"""How the system message carrying recalled long-term facts begins (one fact per "- " line)."""


class PromptMessage(TypedDict):
    """One message of a prompt, in the shape every chat-completions API accepts."""

    role: Role
    content: str


class ChatModel(Protocol):
    """What the orchestrator needs from a model: a streamed reply and a way to release resources."""

    @property
    def name(self) -> str:
        """A label for logs and metrics, e.g. "offline" or "openai:gpt-4o-mini"."""
        ...

    def stream(self, messages: Sequence[PromptMessage]) -> AsyncIterator[str]:
        """Yield the reply's text deltas; raise ModelError if no complete reply can be had."""
        ...

    async def aclose(self) -> None:
        """Release connections; the model is not used afterwards."""
        ...


def summary_message(summary: str) -> PromptMessage:
    """The system message that carries the rolling summary (recognised by its SUMMARY_MARKER prefix)."""
    return {"role": "system", "content": f"{SUMMARY_MARKER} {summary}"}


async def complete(model: ChatModel, messages: Sequence[PromptMessage]) -> str:
    """The whole reply as one string, for callers that do not stream."""
    deltas = model.stream(messages)
    try:
        return "".join([delta async for delta in deltas])
    finally:
        if isinstance(deltas, AsyncGenerator):  # close the HTTP stream now, not at garbage collection
            await deltas.aclose()
