"""The registry of scenarios: each one's name, runner and metrics, and how `python -m bench` runs it.

A scenario's name is written here and nowhere else. The load generator
(bench.loadgen) looks the scenario up by name and runs it; the harness
(bench.run) builds its cases, table rows and charts from these entries. A new
scenario is a runner (a coroutine taking the swarm and the options) and one
entry in SCENARIOS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench import fleet, history_load, server_load
from bench.swarm import Options, Swarm

Runner = Callable[[Swarm, Options], Awaitable[dict[str, Any]]]

# Keys of bench.run.PEERS: by default a scenario runs against all four servers.
EVERYONE = ("raw", "websockets", "node", "tally")
# Tally on SQLite, on Redis, and two Tally servers on one Redis.
STORES = ("tally", "tally-redis", "tally-cluster")
HISTORY_METRICS = (("idle_p50_ms", True), ("idle_p99_ms", True), ("busy_p50_ms", True), ("busy_p99_ms", True),
                   ("p99_busy_over_idle", True), ("pages_per_s", False), ("server_cpu_ms_per_page", True),
                   ("redis_cpu_ms_per_page", True))  # fmt: skip


@dataclass(frozen=True)
class Chart:
    """An SVG chart of one metric against clients, a line per peer, saved beside the JSON."""

    metric: str
    title: str


@dataclass(frozen=True)
class Scenario:
    """One scenario: what runs it, what it reports, and the cases `python -m bench` makes of it."""

    name: str
    run: Runner
    metrics: tuple[tuple[str, bool], ...]  # (metric, lower is better), in the table's order
    clients: tuple[int, ...]  # one case per size
    quick_clients: tuple[int, ...]
    flags: tuple[str, ...] = ()  # for the load generator
    quick_flags: tuple[str, ...] | None = None  # None: the same as flags
    peers: tuple[str, ...] = EVERYONE  # in this order in the first round, rotated in the next
    durable: bool = False  # a database file, not :memory:, so that each commit costs its fsync
    chart: Chart | None = None
    subject: str = "tally"  # the peer whose figures are divided by the others' in the ratio column
    twins: tuple[str, ...] = ()  # peers measured at the baseline too, with --baseline
    peer_env: tuple[tuple[str, str], ...] = ()  # set for the servers of this scenario

    def sizes(self, quick: bool) -> tuple[int, ...]:
        return self.quick_clients if quick else self.clients

    def flags_for(self, quick: bool) -> tuple[str, ...]:
        return self.quick_flags if quick and self.quick_flags is not None else self.flags


async def dashboard(swarm: Swarm, options: Options) -> dict[str, Any]:
    # Imported here and not at the top so that only this scenario loads Textual and the app:
    # the harness and every other scenario's load generator import this registry too.
    from bench.dashboard import absorb

    return await absorb(swarm, options)


async def web_tabs(swarm: Swarm, options: Options) -> dict[str, Any]:
    from bench.web import tabs

    return await tabs(swarm, options)


async def dashboard_cost(swarm: Swarm, options: Options) -> dict[str, Any]:
    from bench.dashboard import cost

    return await cost(swarm, options)


SCENARIOS = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "fanout", server_load.fanout, (("p50_ms", True), ("p99_ms", True), ("max_ms", True)),
            clients=(100, 1000, 2000), quick_clients=(100, 500),
            # 200 updates a run, so that p99 is not just the slowest of a few dozen.
            flags=("--rate", "20", "--updates", "200"), quick_flags=("--rate", "20", "--updates", "40"),
            chart=Chart("p99_ms", "Fan-out p99 latency (ms) against connected clients"),
        ),
        Scenario(
            # The same measure at the sizes a team reaches, with the dashboards held by a fleet of client
            # processes (Node ws clients) so that the generator outruns the server; its CPU is reported beside
            # the server's. The counter peers send their count of users at most once a second, as Tally
            # does in a room this large (sent on every join, it would be 50 million frames at 10,000).
            "fanout_fleet", fleet.fanout,
            (("p50_ms", True), ("p99_ms", True), ("server_ms_per_update", True), ("gen_ms_per_update", True),
             ("generator_bound", True), ("server_cpu_us_per_delivery", True)),
            clients=(5000, 10_000), quick_clients=(2000,),
            # 2 a second: on two cores, one update on 10,000 sockets takes the server and the generator each
            # about 0.12 s of a core, and the machine is shared.
            flags=("--rate", "2", "--updates", "40", "--workers", "2", "--readers", "0.2"),
            quick_flags=("--rate", "2", "--updates", "16", "--workers", "2", "--readers", "0.2"),
            peer_env=(("BENCH_COUNT_INTERVAL", "1"),),
        ),
        Scenario(
            # Not in python -m bench's rounds (no sizes): python -m bench.scale runs it, sized on its command line.
            "scale", fleet.scale,
            (("p50_ms", True), ("p99_ms", True), ("deliveries_per_s", False), ("server_cpu_us_per_delivery", True),
             ("redis_cpu_us_per_delivery", True), ("server_cpu_us_per_update", True), ("redis_cpu_us_per_update", True),
             ("server_ms_per_update", True), ("gen_ms_per_update", True), ("gen_cpu_pct", True),
             ("generator_bound", True)),
            clients=(), quick_clients=(), peers=("tally-cluster",), durable=True, subject="tally-cluster",
        ),
        Scenario(
            "capacity", server_load.capacity, (("updates_per_s", False), ("cpu_us_per_delivery", True)),
            clients=(1000,), quick_clients=(100,), flags=("--seconds", "3"), quick_flags=("--seconds", "2"),
        ),
        Scenario(
            # 200: a live room, where settling means every dashboard holds the whole list;
            # 2,000: a large one, where it means every dashboard has the count.
            "joinstorm", server_load.joinstorm,
            (("settle_s", True), ("connect_s", True), ("settle_per_connect", True), ("welcomed_s", True)),
            clients=(200, 2000), quick_clients=(200, 500),
        ),
        Scenario(
            "memory", server_load.memory, (("idle_kib_per_conn", True), ("busy_kib_per_conn", True)),
            clients=(1000,), quick_clients=(500,),
        ),
        Scenario(
            "durable", server_load.durable,
            (("acked_per_s", False), ("server_cpu_us_per_add", True), ("server_cpu_pct", True), ("gen_cpu_pct", True)),
            clients=(50,), quick_clients=(50,),
            flags=("--seconds", "3", "--window", "10"), quick_flags=("--seconds", "2", "--window", "10"),
            peers=("tally-1commit", "tally", "tally-uvloop"), durable=True, twins=("tally",),
        ),
        Scenario(
            # The same at capacity: 40 adds in flight a client (the server lets one have 100), so that the
            # server, not the round trip of 500 adds, bounds the rate.
            "durable_capacity", server_load.durable,
            (("acked_per_s", False), ("server_cpu_us_per_add", True), ("server_cpu_pct", True), ("gen_cpu_pct", True)),
            clients=(50,), quick_clients=(50,),
            flags=("--seconds", "3", "--window", "40"), quick_flags=("--seconds", "2", "--window", "40"),
            peers=("tally",), durable=True, twins=("tally",),
        ),
        Scenario(
            "redis_durable", server_load.durable,
            (("acked_per_s", False), ("server_cpu_us_per_add", True), ("redis_cpu_us_per_add", True),
             ("server_cpu_pct", True), ("gen_cpu_pct", True)),
            clients=(50,), quick_clients=(50,),
            flags=("--seconds", "4", "--window", "10"), quick_flags=("--seconds", "2", "--window", "10"),
            peers=("tally", "tally-redis"), durable=True, subject="tally-redis", twins=("tally-redis",),
        ),
        Scenario(
            "redis_capacity", server_load.durable,
            (("acked_per_s", False), ("server_cpu_us_per_add", True), ("redis_cpu_us_per_add", True),
             ("server_cpu_pct", True), ("gen_cpu_pct", True)),
            clients=(50,), quick_clients=(50,),
            flags=("--seconds", "4", "--window", "40"), quick_flags=("--seconds", "2", "--window", "40"),
            peers=("tally", "tally-redis"), durable=True, subject="tally-redis", twins=("tally-redis",),
        ),
        Scenario(
            # What the Redis store's options cost an add: the witness (always on; against a peer that skips
            # its writes) and waiting for a replica (Redis WAIT).
            "redis_options", server_load.durable,
            (("acked_per_s", False), ("server_cpu_us_per_add", True), ("redis_cpu_us_per_add", True)),
            clients=(50,), quick_clients=(50,),
            flags=("--seconds", "4", "--window", "10"), quick_flags=("--seconds", "2", "--window", "10"),
            peers=("tally-redis", "tally-redis-nowitness", "tally-redis-replica"), durable=True,
            subject="tally-redis",
        ),
        Scenario(
            # Dashboards paging history from 2 and 4 addresses, each as fast as the default limits let one
            # address, while one adds: its add->ack against idle.
            "history_paging", history_load.history_paging, HISTORY_METRICS,
            clients=(2, 4), quick_clients=(2,),
            flags=("--seconds", "4", "--updates", "5000", "--rate", "20"),
            quick_flags=("--seconds", "2", "--updates", "1000", "--rate", "20"), peers=("tally", "tally-redis"),
            durable=True,
        ),
        Scenario(
            # The same with nothing holding the pagers back: what the store does at its own limit.
            "history_flood", history_load.history_paging, HISTORY_METRICS,
            clients=(2, 4), quick_clients=(2,),
            flags=("--seconds", "4", "--updates", "5000", "--rate", "0"),
            quick_flags=("--seconds", "2", "--updates", "1000", "--rate", "0"), peers=("tally", "tally-redis"),
            durable=True,
        ),
        Scenario(
            "cluster_fanout", server_load.cluster_fanout, (("p50_ms", True), ("p99_ms", True), ("max_ms", True)),
            clients=(1000,), quick_clients=(200,),
            flags=("--rate", "20", "--updates", "200"), quick_flags=("--rate", "20", "--updates", "40"),
            peers=STORES, durable=True, subject="tally-cluster",
        ),
        Scenario(
            "cluster_capacity", server_load.cluster_capacity,
            (("updates_per_s", False), ("cpu_us_per_delivery", True), ("server_cpu_us_per_update", True),
             ("redis_cpu_us_per_update", True)),
            clients=(1000,), quick_clients=(200,), flags=("--seconds", "3"), quick_flags=("--seconds", "2"),
            peers=STORES, durable=True, subject="tally-cluster",
        ),
        Scenario(
            "tenk", server_load.tenk, (("held", False), ("connect_s", True)),
            clients=(10_000,), quick_clients=(2000,), peers=("tally",),
        ),
        Scenario(
            "churn", server_load.churn,
            (("p99_ms", True), ("churn_p99_ms", True), ("p99_churn_over_quiet", True), ("joins_per_s", False),
             ("join_p99_ms", True)),
            clients=(10_000,), quick_clients=(2000,),
            # 100 updates with churn and 100 without, so that p99 is not just the slowest one; 2.5 a second,
            # since the load generator takes about 0.15 s of its core to read one update on 10,000 sockets.
            flags=("--rate", "2.5", "--updates", "200", "--churn", "100"),
            quick_flags=("--rate", "4", "--updates", "40", "--churn", "100"), peers=("tally",),
        ),
        Scenario(
            "dashboard", dashboard, (("updates_per_s", False), ("key_p50_ms", True), ("key_p99_ms", True)),
            clients=(1,), quick_clients=(1,),
            flags=("--rate", "1000", "--seconds", "4"), quick_flags=("--rate", "1000", "--seconds", "2"),
            peers=("tally",),
        ),
        Scenario(
            # A real dashboard process in a terminal: its CPU idle, and while others add 30 times a second.
            "dashboard_cost", dashboard_cost, (("idle_cpu_pct", True), ("busy_cpu_pct", True)),
            clients=(1,), quick_clients=(1,),
            flags=("--rate", "30", "--seconds", "5"), quick_flags=("--rate", "30", "--seconds", "3"),
            peers=("tally",),
        ),
        Scenario(
            # `tally web`: one dashboard process per browser tab; its memory at 80x24 and at the largest size.
            "web_tabs", web_tabs, (("tab_mib_80x24", True), ("tab_mib_largest", True), ("web_mib", True)),
            clients=(5,), quick_clients=(2,), peers=("tally",),
        ),
    )
}  # fmt: skip
