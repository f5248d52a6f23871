"""rediss:// (TLS, as Upstash and Vercel KV need), through a TLS-terminating proxy in front of the test server."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trustme

import turnstate


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def tls_url(redis_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A rediss:// URL whose TLS is terminated here and forwarded to the test server."""
    target = urlsplit(redis_url)
    if target.scheme != "redis":
        pytest.skip("the TLS proxy forwards to a redis:// server")
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(target.hostname, target.port)
        await asyncio.gather(_pipe(client_reader, up_writer), _pipe(up_reader, client_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"rediss://:secret-password@127.0.0.1:{port}/0?ssl_ca_certs={ca_file}"
        server.close()


async def test_a_conversation_over_tls(tls_url: str, key_prefix: str, tmp_path: Path) -> None:
    settings = turnstate.Settings(data_dir=tmp_path, key_prefix=key_prefix)
    async with turnstate.connect(tls_url, settings=settings) as store:
        assert store.address.startswith("rediss://127.0.0.1:")
        assert "secret" not in store.address
        turn = await store.begin_turn("over-tls", "hello")
        reply = await store.finish_turn(turn, "hi")
        assert [m.seq for m in await store.history("over-tls")] == [turn.seq, reply.seq]
