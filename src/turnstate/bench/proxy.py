"""A TCP proxy on 127.0.0.1 that adds round-trip time and counts what crosses it.

The benchmark puts it between the client and the server for two reasons:

- **distance**: it holds every client-to-server chunk back by the added round-trip time (replies
  pass at once), so each request-reply exchange takes that much longer, as it does for a
  function calling a Redis in another region. Run as `python -m turnstate.bench.proxy`, in its
  own process, so its work never runs on the benchmark's event loop.
- **counting**: it counts the bytes each way, and the round trips: the times a connection's
  client speaks after hearing the server (or first). A pipeline is one, a script is one, a
  blocking pop that waits is one. The server and the client library play no part in the count.

It only ever listens on 127.0.0.1, accepts a bounded number of connections, and (as a process)
exits after `--max-seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

READ_BYTES = 1 << 16
MAX_CONNECTIONS = 256
MAX_SECONDS = 900.0


@dataclass
class ProxyStats:
    """Totals since the proxy started; take differences around what you measure."""

    round_trips: int = 0
    bytes_up: int = 0  # client -> server
    bytes_down: int = 0  # server -> client
    connections: int = 0
    refused: int = 0

    def copy(self) -> ProxyStats:
        return ProxyStats(self.round_trips, self.bytes_up, self.bytes_down, self.connections, self.refused)


class _Link:
    """One proxied connection: which side spoke last decides when a new round trip starts."""

    def __init__(self) -> None:
        self.client_spoke_last = False


class DelayProxy:
    """Forward 127.0.0.1:<port> to `target_host:target_port`, adding `delay_seconds` per round trip."""

    def __init__(
        self, target_host: str, target_port: int, *, delay_seconds: float = 0.0, max_connections: int = MAX_CONNECTIONS
    ) -> None:
        self.target = (target_host, target_port)
        self.delay = delay_seconds
        self.max_connections = max_connections
        self.stats = ProxyStats()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        # Closing both ends of every link ends its pumps (cancelling the connection handlers
        # instead would make asyncio log each cancelled handler on Python 3.11).
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> DelayProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._tasks) >= self.max_connections or self._server is None:
            self.stats.refused += 1
            writer.close()
            return
        self.stats.connections += 1
        self._tasks.add(task)
        self._writers.add(writer)
        upstream: asyncio.StreamWriter | None = None
        try:
            up_reader, upstream = await asyncio.open_connection(*self.target)
            self._writers.add(upstream)
            link = _Link()
            await asyncio.gather(
                self._pump(reader, upstream, link, up=True), self._pump(up_reader, writer, link, up=False)
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            for w in (writer, upstream):
                if w is not None:
                    self._writers.discard(w)
                    w.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, link: _Link, *, up: bool) -> None:
        """Copy one direction; upstream data is held back by the delay, in order."""
        held: asyncio.Queue[tuple[float, bytes]] | None = asyncio.Queue() if up and self.delay > 0 else None
        sender = asyncio.create_task(self._send_held(held, dst)) if held is not None else None
        loop = asyncio.get_running_loop()
        try:
            while data := await src.read(READ_BYTES):
                self._count(data, link, up=up)
                if not self._passes(data, link, up=up):
                    dst.close()  # the far side sees its connection drop, with nothing more
                    return
                if held is not None:
                    held.put_nowait((loop.time() + self.delay, data))
                else:
                    dst.write(data)
                    await dst.drain()
            if held is not None and sender is not None:
                held.put_nowait((0.0, b""))  # end of stream: send what is held, then stop
                await sender
        finally:
            if sender is not None and not sender.done():
                sender.cancel()
            with contextlib.suppress(OSError):
                if dst.can_write_eof():
                    dst.write_eof()

    @staticmethod
    async def _send_held(held: asyncio.Queue[tuple[float, bytes]], dst: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, data = await held.get()
            if not data:
                return
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            dst.write(data)
            await dst.drain()

    def _passes(self, data: bytes, link: _Link, *, up: bool) -> bool:
        """Whether `data` goes on; a proxy that injects faults (tests/fault_proxy.py) says no."""
        return True

    def _count(self, data: bytes, link: _Link, *, up: bool) -> None:
        if up:
            self.stats.bytes_up += len(data)
            if not link.client_spoke_last:
                self.stats.round_trips += 1
        else:
            self.stats.bytes_down += len(data)
        link.client_spoke_last = up


@contextlib.asynccontextmanager
async def delay_proxy_process(target_host: str, target_port: int, delay_ms: float) -> AsyncIterator[int]:
    """Run the proxy in a child process for the duration; yield the port it listens on."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "turnstate.bench.proxy",
        "--target-host", target_host, "--target-port", str(target_port), "--delay-ms", str(delay_ms),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        async with asyncio.timeout(15):
            line = (await process.stdout.readline()).decode()
        if not line.startswith("port "):
            raise RuntimeError(f"the delay proxy did not start (it said {line!r})")
        yield int(line.split()[1])
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def _serve(host: str, port: int, delay_ms: float, max_seconds: float) -> None:
    async with DelayProxy(host, port, delay_seconds=delay_ms / 1000) as proxy:
        print(f"port {proxy.port}", flush=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max_seconds):
                await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m turnstate.bench.proxy", description=__doc__.splitlines()[0])
    parser.add_argument("--target-host", default="127.0.0.1")
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="added round-trip time")
    parser.add_argument("--max-seconds", type=float, default=MAX_SECONDS, help="exit after this long")
    ns = parser.parse_args()
    asyncio.run(_serve(ns.target_host, ns.target_port, ns.delay_ms, ns.max_seconds))
