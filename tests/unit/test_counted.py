"""The counters kept as plain numbers read out exactly as prometheus_client's own would be."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from tally.server.monitoring import BATCH_BUCKETS, LATENCY_BUCKETS, Metrics

COUNTED = ("tally_messages_received", "tally_adds_applied", "tally_duplicates", "tally_fanout_frames",
           "tally_fanout_bytes", "tally_store_commit_seconds", "tally_store_batch_size",
           "tally_update_latency_seconds")  # fmt: skip


PLAIN = (
    ("tally_adds_applied", "Adds applied to the total."),
    ("tally_duplicates", "Adds answered with their original ack (a resend)."),
    ("tally_fanout_frames", "Frames written to clients."),
    ("tally_fanout_bytes", "Bytes written to clients."),
)
SPREADS = (
    ("tally_store_commit_seconds", "Time to store one batch of adds.", LATENCY_BUCKETS),
    ("tally_store_batch_size", "Adds stored in one batch (group commit).", BATCH_BUCKETS),
    ("tally_update_latency_seconds", "Time from receiving an add to publishing its update.", LATENCY_BUCKETS),
)


def families(text: str) -> dict[str, list[str]]:
    """The lines of each family named in COUNTED (HELP, TYPE and samples), by family."""
    found: dict[str, list[str]] = {name: [] for name in COUNTED}
    for line in text.splitlines():
        name = line.split()[2] if line.startswith("#") else line.split("{")[0].split()[0]
        for family in COUNTED:
            if name == family or name.startswith((family + "_", family + "{")):
                found[family].append(line)
    return found


def test_plain_counters_give_prometheus_clients_own_text() -> None:
    """Every name, help text, type, label, bucket and value is what prometheus_client's Counter and Histogram
    write for the same events, from zero on (a protocol never heard from included)."""
    metrics = Metrics()
    reference = CollectorRegistry()
    received = Counter("tally_messages_received_total", "Messages received from clients, by protocol.",
                       ["protocol"], registry=reference)  # fmt: skip
    for protocol in ("tally.v2", "tally.v1", "bare"):
        received.labels(protocol)
    plain = {name: Counter(name + "_total", doc, registry=reference) for name, doc in PLAIN}
    spreads = {name: Histogram(name, doc, buckets=buckets, registry=reference) for name, doc, buckets in SPREADS}
    assert families(metrics.text().decode()) == families(generate_latest(reference).decode())

    for n in range(300):
        metrics.received_for("tally.v2" if n % 3 else "bare").inc()
        received.labels("tally.v2" if n % 3 else "bare").inc()
        for name, count in (("tally_adds_applied", metrics.adds_applied), ("tally_fanout_bytes", metrics.fanout_bytes)):
            count.inc(n)
            plain[name].inc(n)
        if n % 7 == 0:
            metrics.duplicates.inc()
            plain["tally_duplicates"].inc()
        metrics.fanout_frames.inc(3)
        plain["tally_fanout_frames"].inc(3)
        seconds = [0.0005, 0.0001 * n, 5.0, 7.5, 0.25][n % 5]  # on bounds, between, past the last
        for name, spread in (("tally_store_commit_seconds", metrics.commit_seconds),
                             ("tally_update_latency_seconds", metrics.update_seconds)):  # fmt: skip
            spread.observe(seconds)
            spreads[name].observe(seconds)
        metrics.batch_size.observe(n)
        spreads["tally_store_batch_size"].observe(n)
    ours, theirs = families(metrics.text().decode()), families(generate_latest(reference).decode())
    assert all(ours[name] for name in COUNTED) and ours == theirs
