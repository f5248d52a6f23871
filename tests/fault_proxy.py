"""A TCP proxy in front of a real server that can lose one reply: the request ran, its answer never arrives.

That is the one network fault a retry must be safe against, and a dropped connection (CLIENT
KILL) hits it only by chance; the proxy hits it on purpose. It forwards both ways unchanged until
armed with `lose_reply_to(marker)`: the next request containing `marker` goes through to the
server, and then the server's reply is thrown away and the client's connection closed.
"""

from __future__ import annotations

import asyncio
import contextlib

READ_BYTES = 1 << 16


class _Link:
    def __init__(self) -> None:
        self.losing = False  # the server's next reply on this link is to be lost


class LosingProxy:
    """Forward 127.0.0.1:<port> to 127.0.0.1:`target_port`; lose one chosen reply on request."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.lost = 0  # replies lost so far
        self._marker: bytes | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def lose_reply_to(self, marker: bytes) -> None:
        """Lose the reply to the next request that contains `marker` (once)."""
        self._marker = marker

    async def __aenter__(self) -> LosingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        upstream: asyncio.StreamWriter | None = None
        try:
            up_reader, upstream = await asyncio.open_connection("127.0.0.1", self.target_port)
            self._writers.add(upstream)
            link = _Link()
            await asyncio.gather(self._up(reader, upstream, link), self._down(up_reader, writer, link))
        except OSError:
            pass
        finally:
            self._tasks.discard(task)
            for w in (writer, upstream):
                if w is not None:
                    self._writers.discard(w)
                    w.close()

    async def _up(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, link: _Link) -> None:
        while data := await src.read(READ_BYTES):
            if self._marker is not None and self._marker in data:
                self._marker, link.losing = None, True
            dst.write(data)
            await dst.drain()
        with contextlib.suppress(OSError):
            dst.write_eof()

    async def _down(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, link: _Link) -> None:
        while data := await src.read(READ_BYTES):
            if link.losing:
                self.lost += 1
                dst.close()  # the client sees its connection drop with no reply
                return
            dst.write(data)
            await dst.drain()
        with contextlib.suppress(OSError):
            dst.write_eof()
