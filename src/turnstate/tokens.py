"""Token counting, pluggable: a window is bounded by tokens as well as by messages.

Counts are taken once, when a message is stored, and kept with it, so the turn scripts can
apply the token budget on the server. The default needs no model files and no network: it
counts words and punctuation, and long words as one token per four characters, which tracks
BPE tokenizers within a modest margin for English and errs high for other scripts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol, runtime_checkable

_PIECES = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@runtime_checkable
class TokenCounter(Protocol):
    """Anything that says how many tokens a text costs (e.g. a tiktoken encoding's wrapper)."""

    def count(self, text: str) -> int: ...


class ApproximateCounter:
    """Offline default: words and punctuation, long words split every four characters."""

    def count(self, text: str) -> int:
        return sum((len(piece) + 3) // 4 for piece in _PIECES.findall(text))


class CallableCounter:
    """Adapts a plain function `text -> int` (for example `lambda t: len(enc.encode(t))`)."""

    def __init__(self, fn: Callable[[str], int]) -> None:
        self._fn = fn

    def count(self, text: str) -> int:
        return int(self._fn(text))
