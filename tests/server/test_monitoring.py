"""Health, readiness and metrics on the server's own port, and logs a machine can read."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from tally.server.app import TallyServer
from tally.server.protocol import Ack, Error
from tally.server.state import AddRequest, Outcome
from tally.server.store.sqlite import SQLiteStore
from tests.support.peers import Peer
from tests.support.servers import ServerProcess, serving
from tests.support.waiting import until


class FlakyStore(SQLiteStore):
    """The real SQLite store, with a switch that makes its disk fail."""

    broken = False

    async def apply(self, batch: Sequence[AddRequest], *, at: float) -> list[Outcome]:
        if self.broken:
            raise sqlite3.OperationalError("disk I/O error")
        return await super().apply(batch, at=at)


async def get(server: TallyServer, path: str, token: str | None = None) -> tuple[int, str]:
    """GET ``path`` on the server's own port, as Prometheus or a load balancer would."""
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")

    def fetch() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    return await asyncio.to_thread(fetch)


async def metrics(
    server: TallyServer, token: str | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed with Prometheus's own parser: (name, labels) -> value."""
    status, text = await get(server, "/metrics", token)
    assert status == 200, text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_health_and_readiness(server: TallyServer) -> None:
    """/healthz answers while the process lives; /readyz once the ledger is loaded and the store answers."""
    assert await get(server, "/healthz") == (200, "ok\n")
    assert await get(server, "/readyz") == (200, "ready\n")


async def test_readiness_follows_the_store(tmp_path: Path) -> None:
    """A store that fails makes /readyz 503 with the reason (and /healthz stays 200); it recovers with the store."""
    store = FlakyStore(tmp_path / "tally.db")
    async with serving(store=store) as server, await Peer.join(server.url, "alice") as alice:
        store.broken = True
        await alice.send(type="add", op="1", amount=1)
        assert (await alice.next_of(Error)).code == "unavailable"
        status, text = await get(server, "/readyz")
        assert (status, text) == (503, "not ready: the store is unavailable: disk I/O error\n")
        assert (await get(server, "/healthz"))[0] == 200
        store.broken = False
        await alice.send(type="add", op="2", amount=1)
        assert isinstance(await alice.next_of(Ack), Ack)
        assert await get(server, "/readyz") == (200, "ready\n")


async def test_metrics_move_with_what_happens(server: TallyServer) -> None:
    """Connections, adds, duplicates, refusals, frames and latency histograms are counted as they happen."""
    before = await metrics(server)
    async with await Peer.join(server.url, "alice") as alice:
        await alice.send(type="add", op="1", amount=5)
        await alice.next_of(Ack)
        await alice.send(type="add", op="1", amount=5)  # a resend
        await alice.next_of(Ack)
        await alice.send_raw("not json")
        await alice.next_of(Error)
        now = await metrics(server)
    assert now[("tally_connections_open", (("protocol", "tally.v2"),))] == 1
    assert now[("tally_adds_applied_total", ())] - before[("tally_adds_applied_total", ())] == 1
    assert now[("tally_duplicates_total", ())] == 1
    assert now[("tally_messages_refused_total", (("code", "bad_message"),))] == 1
    assert now[("tally_messages_received_total", (("protocol", "tally.v2"),))] == 4  # hello, two adds, garbage
    assert now[("tally_fanout_frames_total", ())] > 0 and now[("tally_fanout_bytes_total", ())] > 100
    assert now[("tally_store_commit_seconds_count", ())] >= 2 and now[("tally_update_latency_seconds_count", ())] == 1
    assert (now[("tally_total_value", ())], now[("tally_seq", ())], now[("tally_people_online", ())]) == (5, 1, 1)
    await until(lambda: server.handler.open_connections == 0, what="alice gone")
    after = await metrics(server)
    assert after[("tally_connections_open", (("protocol", "tally.v2"),))] == 0


async def test_a_bare_number_sent_and_closed_at_once_is_counted(server: TallyServer) -> None:
    """`echo 5 | python -m websockets URL` sends and closes before the reply: its message and add still count."""
    async with connect(server.url) as blog:
        await blog.send("5")
    await until(lambda: server.ledger.total == 5, what="the add applied")
    now = await metrics(server)
    assert now[("tally_messages_received_total", (("protocol", "bare"),))] == 1
    assert now[("tally_adds_applied_total", ())] == 1


async def test_refused_handshakes_and_drops_are_counted_by_reason() -> None:
    """A wrong token is counted as such, for a handshake and for /metrics alike; /healthz never wants it."""
    async with serving(token="secret") as server:
        assert (await get(server, "/metrics"))[0] == 401
        assert (await get(server, "/healthz"))[0] == 200
        try:
            await Peer.join(server.url, "mallory", additional_headers={"Authorization": "Bearer wrong"})
        except Exception as exc:
            assert "401" in str(exc)
        counted = await metrics(server, "secret")
        assert counted[("tally_handshakes_refused_total", (("reason", "token"),))] == 2


async def test_logs_can_be_one_json_object_per_line(tmp_path: Path) -> None:
    """--log-format json: each line is JSON with time, level, event, client, address and code."""
    with ServerProcess(tmp_path / "tally.db", "--log-format", "json") as server:
        async with await Peer.join(server.start(), "alice") as alice:
            await alice.send_raw("not json")
            await alice.next_of(Error)
        server.terminate()
    lines = [json.loads(line) for line in server.log]
    assert all({"time", "level", "event", "client", "address", "code", "message"} <= line.keys() for line in lines)
    events = {line["event"]: line for line in lines}
    assert {"serving", "join", "refuse", "leave", "stopped"} <= events.keys()
    assert events["refuse"]["code"] == "bad_message" and events["join"]["address"].startswith("127.0.0.1:")
