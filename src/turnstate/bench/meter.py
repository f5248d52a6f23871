"""What a turn puts on the wire and makes the server do, counted three ways.

- round trips and bytes each way: at the counting proxy (`proxy.py`), on the wire itself;
- commands the client sent, by name: as the server logs them (MONITOR, `commands.py`); this is
  what per-command pricing bills, and it is None where the server refuses MONITOR;
- commands the server executed, by name: INFO commandstats deltas, which also count the
  commands run inside scripts (a script is one command sent, but many executed). They are
  server-wide: on a server other clients are using, they include those clients' commands.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass

import redis.asyncio as aioredis

from turnstate.bench.commands import count_commands
from turnstate.bench.proxy import DelayProxy
from turnstate.bench.runner import Runner

OWN_COMMANDS = frozenset({"info"})  # the meter's own reads, not the turn's


@dataclass(frozen=True, slots=True)
class Wire:
    """One turn's traffic, averaged over the counted turns."""

    round_trips: float
    bytes_up: float  # client -> server
    bytes_down: float  # server -> client
    sent: dict[str, float] | None  # commands sent by the client, by name; None: MONITOR refused
    executed: dict[str, float]  # commands executed by the server, scripts' included, by name

    @property
    def bytes_total(self) -> float:
        return self.bytes_up + self.bytes_down

    @property
    def sent_total(self) -> float | None:
        return None if self.sent is None else sum(self.sent.values())

    @property
    def executed_total(self) -> float:
        return sum(self.executed.values())


async def command_calls(observer: aioredis.Redis) -> Counter[str]:
    """Calls so far of every command the server has run, by lowercase name."""
    stats = await observer.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()})


async def _turns(runner: Runner, turns: int) -> None:
    for _ in range(turns):
        await runner.turn()


async def count_wire(runner: Runner, proxy: DelayProxy, observer: aioredis.Redis, turns: int) -> Wire:
    """Count `turns` turns of `runner`, whose client talks through `proxy`; `observer` talks directly.

    Each counted turn starts from the history length being measured.
    """
    await runner.restore()
    up = down = trips = 0
    executed: Counter[str] = Counter()
    for _ in range(turns):
        await runner.restore()
        calls, wire = await command_calls(observer), proxy.stats.copy()
        await runner.turn()
        after = proxy.stats
        trips += after.round_trips - wire.round_trips
        up += after.bytes_up - wire.bytes_up
        down += after.bytes_down - wire.bytes_down
        executed.update((await command_calls(observer)) - calls)
    for name in OWN_COMMANDS:
        del executed[name]
    await runner.restore()
    sent = await count_commands(observer, runner.marker, functools.partial(_turns, runner, turns))
    await runner.restore()
    return Wire(
        round_trips=trips / turns,
        bytes_up=up / turns,
        bytes_down=down / turns,
        sent=None if sent is None else {k: n / turns for k, n in sorted(sent.items())},
        executed={k: n / turns for k, n in sorted(executed.items())},
    )
