"""Metrics a Prometheus user takes as they are: promtool's checks, the shipped rules and dashboard, a real scrape.

promtool and prometheus are Debian's ``prometheus`` package (``.ci/run``
installs it and sets TALLY_REQUIRE_PROMETHEUS, so there they never skip).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tally.server import version
from tally.server.app import TallyServer
from tally.server.monitoring import STORE_STATES
from tally.server.protocol import Ack, Error
from tests.server.test_monitoring import FlakyStore, get, metrics
from tests.support.peers import Peer
from tests.support.servers import REPOSITORY, serving
from tests.support.waiting import until

MONITORING = REPOSITORY / "docs" / "monitoring"
RULES = MONITORING / "tally-alerts.yml"
TOKEN = "scrape-me"


def tool(name: str) -> str:
    """The path of promtool or prometheus; skip without it, unless CI said it must be there."""
    found = shutil.which(name)
    if found is None:
        message = f"needs {name} (Debian's prometheus package; .ci/run installs it)"
        if os.environ.get("TALLY_REQUIRE_PROMETHEUS"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def promtool(*args: str, text: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], input=text, capture_output=True, text=True, timeout=60, cwd=cwd)


async def busy(server: TallyServer) -> str:
    """Make every kind of series move: adds, a resend, a refused add, a bad message, a wrong token. The text."""
    async with await Peer.join(server.url, "alice", additional_headers={"Authorization": f"Bearer {TOKEN}"}) as alice:
        await alice.send(type="add", op="1", amount=5)
        await alice.next_of(Ack)
        await alice.send(type="add", op="1", amount=5)
        await alice.next_of(Ack)
        await alice.send(type="add", op="2", amount=10**15)
        assert (await alice.next_of(Error)).code == "invalid_amount"
        await alice.send_raw("not json")
        await alice.next_of(Error)
    with pytest.raises(Exception, match="401"):
        await Peer.join(server.url, "mallory", additional_headers={"Authorization": "Bearer wrong"})
    status, text = await get(server, "/metrics", TOKEN)
    assert status == 200
    return text


async def test_promtool_accepts_the_metrics_of_a_real_server() -> None:
    """`promtool check metrics` finds nothing to say about /metrics of a server that has been busy."""
    async with serving(token=TOKEN) as server:
        text = await busy(server)
    checked = promtool("check", "metrics", text=text)
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


def test_promtool_would_catch_a_gauge_named_like_a_counter() -> None:
    """Negative control: the old `tally_total` gauge fails `promtool check metrics`."""
    registry = CollectorRegistry()
    Gauge("tally_total", "The total.", registry=registry).set(5)
    checked = promtool("check", "metrics", text=generate_latest(registry).decode())
    assert checked.returncode != 0
    assert "tally_total" in checked.stdout + checked.stderr


async def test_every_metric_is_named_by_the_conventions(server: TallyServer) -> None:
    """Counters end in _total and nothing else does; every family has help; ours start tally_, the rest are the
    process and Python collectors'."""
    _, text = await get(server, "/metrics")
    families = list(text_string_to_metric_families(text))
    for family in families:
        assert family.documentation, family.name
        assert family.name.startswith(("tally_", "process_", "python_")), family.name
        name = family.name + ("_total" if family.type == "counter" else "")
        assert name.endswith("_total") == (family.type == "counter"), family.name
    names = {family.name for family in families}
    assert {"process_resident_memory_bytes", "process_cpu_seconds", "python_info", "python_gc_collections"} <= names


async def test_build_info_store_state_and_the_connection_cap(server: TallyServer) -> None:
    """tally_build_info carries the version; the store is up; the cap is the server's own; every series starts at 0."""
    now = await metrics(server)
    info = [labels for (name, labels) in now if name == "tally_build_info"]
    assert len(info) == 1 and ("version", version()) in info[0]
    assert now[("tally_store_up", ())] == 1
    assert {state: now[("tally_store_state", (("state", state),))] for state in STORE_STATES} == {
        "available": 1, "unavailable": 0, "rewound": 0,
    }  # fmt: skip
    assert now[("tally_connections_max", ())] == server.max_connections
    assert now[("tally_handshakes_refused_total", (("reason", "full"),))] == 0
    assert now[("tally_adds_refused_total", (("code", "unavailable"),))] == 0


async def test_store_state_and_refused_adds_follow_the_store(tmp_path: Path) -> None:
    """A failing disk: tally_store_up 0, state unavailable, the add counted as refused unavailable; then back."""
    store = FlakyStore(tmp_path / "tally.db")
    async with serving(store=store) as server, await Peer.join(server.url, "alice") as alice:
        store.broken = True
        await alice.send(type="add", op="1", amount=1)
        assert (await alice.next_of(Error)).code == "unavailable"
        down = await metrics(server)
        assert down[("tally_store_up", ())] == 0
        assert down[("tally_store_state", (("state", "unavailable"),))] == 1
        assert down[("tally_adds_refused_total", (("code", "unavailable"),))] == 1
        store.broken = False
        await alice.send(type="add", op="2", amount=1)
        await alice.next_of(Ack)
        up = await metrics(server)
        assert (up[("tally_store_up", ())], up[("tally_store_state", (("state", "available"),))]) == (1, 1)


async def test_refusals_of_adds_are_told_from_other_refusals(server: TallyServer) -> None:
    """An add out of bounds counts as an add refused; a bad name is a refused message, not a refused add."""
    async with await Peer.join(server.url, "alice") as alice:
        await alice.send(type="add", op="1", amount=10**15)
        assert (await alice.next_of(Error)).code == "invalid_amount"
        await alice.send(type="rename", name="\u202eevil")
        assert (await alice.next_of(Error)).code == "invalid_name"
        now = await metrics(server)
    assert now[("tally_adds_refused_total", (("code", "invalid_amount"),))] == 1
    assert now[("tally_messages_refused_total", (("code", "invalid_name"),))] == 1
    assert now[("tally_adds_refused_total", (("code", "invalid_name"),))] == 0


async def test_the_root_page_says_what_the_port_is(server: TallyServer) -> None:
    """GET / answers a short plain-text page with how to connect (WebSocket clients on / are served as ever)."""
    status, text = await get(server, "/")
    assert status == 200
    assert f"tally --url ws://127.0.0.1:{server.port}\n" in text
    assert "/healthz" in text and "/metrics" in text and len(text.splitlines()) < 15
    async with await Peer.join(server.url, "alice"):
        pass


async def test_the_root_page_never_repeats_a_hostile_host_header() -> None:
    """A Host header that is not a host and port is not echoed; a server with a token says it needs one."""
    async with serving(token=TOKEN) as server:
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}/", headers={"Host": "x<script>:1"})
        text = await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=5).read().decode())
    assert "<script>" not in text
    assert "ws://HOST:PORT --token-file FILE" in text and "requires its token" in text


def alerts_in(path: Path) -> set[str]:
    return set(re.findall(r"^\s*- alert: (\w+)$", path.read_text(), re.MULTILINE))


def test_the_shipped_alerting_rules_pass_promtool() -> None:
    """`promtool check rules` accepts the rules, and `promtool test rules` sees each one fire when it should."""
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alerts_in(RULES))} rules found" in checked.stdout
    tested = promtool("test", "rules", "tally-alerts.test.yml", cwd=MONITORING)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    unit = json.loads((MONITORING / "tally-alerts.test.yml").read_text().split("\n", 3)[3])
    fired = {case["alertname"] for test in unit["tests"] for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert fired == alerts_in(RULES) >= {
        "TallyStoreUnavailable", "TallyAddsRefused", "TallyStoreRewound", "TallyConnectionCapNear",
    }  # fmt: skip


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the shipped Grafana dashboard, with Grafana's variables given values."""
    dashboard = json.loads((MONITORING / "tally-grafana.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(exprs) >= 15
    return [expr.replace("$__rate_interval", "1m").replace("$instance", ".*") for expr in exprs]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Prometheus:
    """A real prometheus scraping one target every second with a token, the shipped rules loaded."""

    def __init__(self, directory: Path, target: str, token: Path) -> None:
        self.directory = directory
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{
                "job_name": "tally", "scheme": "http",
                "authorization": {"credentials_file": str(token)},
                "static_configs": [{"targets": [target]}],
            }],
        }  # fmt: skip
        (directory / "prometheus.yml").write_text(json.dumps(config))
        self.log = (directory / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [tool("prometheus"), f"--config.file={directory / 'prometheus.yml'}",
             f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = error.read()
            if error.code == 503:  # still starting
                raise ConnectionRefusedError(body.decode(errors="replace")) from None
            return json.loads(body)

    async def query(self, path: str, **params: str) -> Any:
        """The API's answer, or None while prometheus is not listening yet."""
        try:
            return await asyncio.to_thread(self.api, path, **params)
        except OSError:
            assert self.process.poll() is None, (self.directory / "prometheus.log").read_text()
            return None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture
async def scraped(tmp_path: Path) -> AsyncIterator[tuple[TallyServer, Prometheus]]:
    """A real server with a token, and a real Prometheus scraping it."""
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    async with serving(token=TOKEN) as server:
        prometheus = Prometheus(tmp_path, f"127.0.0.1:{server.port}", token)
        try:
            yield server, prometheus
        finally:
            prometheus.stop()


async def wait_for(prometheus: Prometheus, query: str, predicate: Any, what: str) -> Any:
    """Poll a query until ``predicate(result)`` holds; the result."""
    found: list[Any] = []

    async def answered() -> None:
        answer = await prometheus.query("query", query=query)
        if answer is not None and answer["status"] == "success" and predicate(answer["data"]["result"]):
            found.append(answer["data"]["result"])

    await until(lambda: bool(found), timeout=45, what=what, poll=answered)
    return found[0]


@pytest.mark.timeout(120)
async def test_a_real_prometheus_scrapes_the_total_with_the_token(
    scraped: tuple[TallyServer, Prometheus],
) -> None:
    """Prometheus scrapes the server with its token: the target is up, the total right, the rules loaded and every
    dashboard query valid PromQL that finds data."""
    server, prometheus = scraped
    async with await Peer.join(server.url, "alice", additional_headers={"Authorization": f"Bearer {TOKEN}"}) as alice:
        await alice.send(type="add", op="1", amount=42)
        await alice.next_of(Ack)
    await wait_for(prometheus, 'up{job="tally"}', lambda r: r and r[0]["value"][1] == "1", "the target up")
    await wait_for(prometheus, "tally_total_value", lambda r: r and r[0]["value"][1] == "42", "the total scraped")
    rules = await prometheus.query("rules")
    loaded = {rule["name"] for group in rules["data"]["groups"] for rule in group["rules"]}
    assert loaded == alerts_in(RULES)
    for expr in dashboard_queries():
        answer = await prometheus.query("query", query=expr)
        assert answer["status"] == "success", (expr, answer)
    firing = await prometheus.query("alerts")
    assert [alert["labels"]["alertname"] for alert in firing["data"]["alerts"]] == []  # a healthy server


async def test_the_store_state_metric_reads_the_servers_store_health(server: TallyServer) -> None:
    """Whatever the server's store health says (here: rewound) is what tally_store_state and tally_store_up say."""
    server.health.rewound("restored from an older copy")
    now = await metrics(server)
    assert now[("tally_store_up", ())] == 0
    assert {state: now[("tally_store_state", (("state", state),))] for state in STORE_STATES} == {
        "available": 0, "unavailable": 0, "rewound": 1,
    }  # fmt: skip
