"""PostgreSQL connection strings and failures: an address that is safe to show, and errors that name it.

Messages show host and port (or the socket file) and the database, never a user's password.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict

from turnstate.errors import InvalidInput, MemoryUnavailable


class Unreachable(MemoryUnavailable):
    """The database did not answer (refused, timed out, dropped): unlike a schema it refused, this may pass."""


class Endpoint:
    """A connection string, and what may be said about it."""

    def __init__(self, conninfo: str) -> None:
        try:
            params = conninfo_to_dict(conninfo)
        except psycopg.ProgrammingError:
            # Not the parser's message: it quotes the string, password and all.
            raise InvalidInput("the database URL is not a PostgreSQL connection string (postgresql://...)") from None
        self.conninfo = conninfo
        self.password = str(params.get("password") or "")
        self.address = _address(params)

    def redact(self, text: str) -> str:
        return text.replace(self.password, "***") if self.password else text

    @asynccontextmanager
    async def reached(self) -> AsyncIterator[None]:
        """Re-raise connection failures (refused, timed out, dropped, no pool connection) as Unreachable."""
        try:
            yield
        except psycopg.OperationalError as exc:
            # `from None`: the chained error is the driver's, and only its redacted text is kept.
            raise Unreachable(f"cannot reach PostgreSQL at {self.address}: {self.redact(_reason(exc))}") from None


def _address(params: Mapping[str, object]) -> str:
    host = str(params.get("host") or params.get("hostaddr") or "")
    port = str(params.get("port") or "5432")
    database = f"/{params['dbname']}" if params.get("dbname") else ""
    if not host:
        return f"the default local socket (port {port}){database}"
    if host.startswith("/"):
        return f"{host}/.s.PGSQL.{port}{database}"
    return f"{host}:{port}{database}"


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
