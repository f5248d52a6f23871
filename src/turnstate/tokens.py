"""Token counting, pluggable: a window is bounded by tokens as well as by messages.

Counts are taken once, when a message is stored, and kept with it, so the turn scripts can
apply the token budget on the server. The default needs no model files and no network: one
token per four UTF-8 bytes, rounded up (OpenAI's rule of thumb). It tracks BPE tokenizers
within a modest margin for English, counts CJK text (three bytes a character, about one token
each) better than a word count does, and costs almost nothing: the store measures the byte
length anyway, for its size limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

BYTES_PER_TOKEN = 4


@runtime_checkable
class TokenCounter(Protocol):
    """Anything that says how many tokens a text costs (e.g. a tiktoken encoding's wrapper)."""

    def count(self, text: str) -> int: ...


def tokens_for_bytes(size: int) -> int:
    """The default count for a text of `size` UTF-8 bytes: one token per four, rounded up."""
    return -(-size // BYTES_PER_TOKEN)


class ApproximateCounter:
    """Offline default: one token per four UTF-8 bytes, rounded up."""

    def count(self, text: str) -> int:
        # surrogatepass: a lone surrogate is counted, not an error (the store refuses it anyway).
        return tokens_for_bytes(len(text.encode("utf-8", "surrogatepass")))


class CallableCounter:
    """Adapts a plain function `text -> int` (for example `lambda t: len(enc.encode(t))`)."""

    def __init__(self, fn: Callable[[str], int]) -> None:
        self._fn = fn

    def count(self, text: str) -> int:
        return int(self._fn(text))
