"""A TCP proxy in front of a real server that can lose one reply: the request ran, its answer never arrives.

That is the one network fault a retry must be safe against, and a dropped connection (CLIENT
KILL) hits it only by chance; the proxy hits it on purpose. It is the benchmark's proxy (no added
delay), forwarding both ways unchanged until armed with `lose_reply_to(marker)`: the next request
containing `marker` goes through to the server, and then the server's reply is thrown away and
the client's connection closed.
"""

from __future__ import annotations

from turnstate.bench.proxy import DelayProxy


class LosingProxy(DelayProxy):
    """Forward 127.0.0.1:<port> to 127.0.0.1:`target_port`; lose one chosen reply on request."""

    def __init__(self, target_port: int) -> None:
        super().__init__("127.0.0.1", target_port)
        self.lost = 0  # replies lost so far
        self._marker: bytes | None = None
        self._losing: set[object] = set()  # links whose server's next reply is to be lost

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def lose_reply_to(self, marker: bytes) -> None:
        """Lose the reply to the next request that contains `marker` (once)."""
        self._marker = marker

    def _passes(self, data: bytes, link: object, *, up: bool) -> bool:
        if up:
            if self._marker is not None and self._marker in data:
                self._marker = None
                self._losing.add(link)
            return True
        if link in self._losing:
            self._losing.discard(link)
            self.lost += 1
            return False
        return True
