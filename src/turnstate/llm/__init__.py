"""Chat models behind one small protocol, so a turn runs the same with OpenAI, a local server, or no LLM at all."""

from __future__ import annotations

from turnstate.config import Settings
from turnstate.llm.base import FACTS_MARKER, SUMMARY_MARKER, ChatModel, PromptMessage, complete, summary_message
from turnstate.llm.offline import OfflineModel

__all__ = [
    "FACTS_MARKER",
    "SUMMARY_MARKER",
    "ChatModel",
    "OfflineModel",
    "PromptMessage",
    "complete",
    "model_from_settings",
    "summary_message",
]


def model_from_settings(settings: Settings) -> ChatModel:
    """An OpenAI-compatible model when a key or a base URL is configured, else the offline model."""
    if settings.openai_api_key is not None or settings.openai_base_url:
        from turnstate.llm.openai import OpenAIModel  # imported here: the SDK is slow to import

        return OpenAIModel.from_settings(settings)
    return OfflineModel()
