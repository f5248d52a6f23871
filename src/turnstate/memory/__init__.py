"""Long-term memory: facts embedded and kept in PostgreSQL with pgvector, recalled by meaning.

This package knows PostgreSQL and embeddings, not the turn protocol's Redis keys; chat.py
composes the two. The OpenAI-compatible embedder lives in `turnstate.memory.openai_embedder`
(imported on demand: the SDK is slow to import); `embedder_from_settings` picks it when asked.
"""

from turnstate.memory.embedder import Embedder, OfflineEmbedder, Vectors, embedder_from_settings
from turnstate.memory.facts import Embedding, Fact, ScoredFact
from turnstate.memory.vectors import FactStore, IndexedMessage, SearchHit, open_fact_store

__all__ = [
    "Embedder",
    "Embedding",
    "Fact",
    "FactStore",
    "IndexedMessage",
    "OfflineEmbedder",
    "ScoredFact",
    "SearchHit",
    "Vectors",
    "embedder_from_settings",
    "open_fact_store",
]
