"""The Markdown table: medians over rounds, ranvier/Synapse ratios, reasons for what was not served."""

from measure import median, ratio

# (scenario, metric key, label, unit, which way is better). Labels are formatted with the
# run's counts, so a --quick table says what it really measured; keys with the fan-out's
# steps ({small}, {medium}, {large}: its counts of long-pollers).
METRICS = [
    ("startup", "seconds", "startup, process start to first 200 on /versions", "s", "↓"),
    ("memory", "idle_mib", "memory idle (PSS)", "MiB", "↓"),
    ("memory", "loaded_mib", "memory after the load (PSS)", "MiB", "↓"),
    ("upload_peak", "peak_above_mib", "memory peak during one {big_upload_mib} MiB upload, above idle", "MiB", "↓"),
    ("send", "rate", "send, {senders} senders in own rooms", "msg/s", "↑"),
    ("send", "p50_ms", "send, own rooms, latency p50", "ms", "↓"),
    ("send", "p99_ms", "send, own rooms, latency p99", "ms", "↓"),
    ("send", "cpu_ms_per_event", "send, own rooms, server CPU per event", "ms", "↓"),
    ("send", "loadgen_cpu_pct", "send, own rooms, load generator CPU", "% core", ""),
    ("send_shared", "rate", "send, {shared_senders} senders in one shared room", "msg/s", "↑"),
    ("send_shared", "p50_ms", "send, shared room, latency p50", "ms", "↓"),
    ("send_shared", "p99_ms", "send, shared room, latency p99", "ms", "↓"),
    ("send_shared", "cpu_ms_per_event", "send, shared room, server CPU per event", "ms", "↓"),
    ("send_shared", "loadgen_cpu_pct", "send, shared room, load generator CPU", "% core", ""),
    ("delivery_sustained", "rate_reached", "delivery at {sustained_target:.0f} msg/s to {receivers} long-pollers, "
     "send rate reached", "msg/s", "↑"),
    ("delivery_sustained", "p50_ms", "delivery at {sustained_target:.0f} msg/s, p50", "ms", "↓"),
    ("delivery_sustained", "p99_ms", "delivery at {sustained_target:.0f} msg/s, p99", "ms", "↓"),
    ("delivery_sustained", "lost", "delivery at {sustained_target:.0f} msg/s, messages lost", "count", "↓"),
    ("delivery_sustained", "gapped", "delivery at {sustained_target:.0f} msg/s, answers with a gap (limited)", "count", "↓"),
    ("delivery_sustained", "loadgen_cpu_pct", "delivery at {sustained_target:.0f} msg/s, load generator CPU",
     "% core", ""),
    ("delivery", "rate_reached", "delivery at {delivery_target:.0f} msg/s (capacity) to {receivers} long-pollers, "
     "send rate reached", "msg/s", "↑"),
    ("delivery", "p50_ms", "delivery at capacity, p50", "ms", "↓"),
    ("delivery", "p99_ms", "delivery at capacity, p99", "ms", "↓"),
    ("delivery", "lost", "delivery at capacity, messages lost", "count", "↓"),
    ("delivery", "gapped", "delivery at capacity, answers with a gap (limited)", "count", "↓"),
    ("delivery", "loadgen_cpu_pct", "delivery at capacity, load generator CPU", "% core", ""),
    ("delivery_fanout", "rate_reached_{small}", "fan-out at {fanout_target:.0f} msg/s to {fanout[small]:,} long-pollers in one room, "
     "send rate reached", "msg/s", "↑"),
    ("delivery_fanout", "p50_ms_{small}", "fan-out to {fanout[small]:,}, delivery p50", "ms", "↓"),
    ("delivery_fanout", "p99_ms_{small}", "fan-out to {fanout[small]:,}, delivery p99", "ms", "↓"),
    ("delivery_fanout", "lost_{small}", "fan-out to {fanout[small]:,}, messages lost", "count", "↓"),
    ("delivery_fanout", "gapped_{small}", "fan-out to {fanout[small]:,}, answers with a gap (limited)", "count", "↓"),
    ("delivery_fanout", "server_cpu_pct_{small}", "fan-out to {fanout[small]:,}, server CPU", "% core", ""),
    ("delivery_fanout", "server_ms_per_sync_{small}", "fan-out to {fanout[small]:,}, server CPU per /sync answered", "ms", "↓"),
    ("delivery_fanout", "loadgen_cpu_pct_{small}", "fan-out to {fanout[small]:,}, load generator CPU", "% core", ""),
    ("delivery_fanout", "rate_reached_{medium}", "fan-out at {fanout_target:.0f} msg/s to {fanout[medium]:,} long-pollers in one room, "
     "send rate reached", "msg/s", "↑"),
    ("delivery_fanout", "p50_ms_{medium}", "fan-out to {fanout[medium]:,}, delivery p50", "ms", "↓"),
    ("delivery_fanout", "p99_ms_{medium}", "fan-out to {fanout[medium]:,}, delivery p99", "ms", "↓"),
    ("delivery_fanout", "lost_{medium}", "fan-out to {fanout[medium]:,}, messages lost", "count", "↓"),
    ("delivery_fanout", "gapped_{medium}", "fan-out to {fanout[medium]:,}, answers with a gap (limited)", "count", "↓"),
    ("delivery_fanout", "server_cpu_pct_{medium}", "fan-out to {fanout[medium]:,}, server CPU", "% core", ""),
    ("delivery_fanout", "server_ms_per_sync_{medium}", "fan-out to {fanout[medium]:,}, server CPU per /sync answered", "ms", "↓"),
    ("delivery_fanout", "loadgen_cpu_pct_{medium}", "fan-out to {fanout[medium]:,}, load generator CPU", "% core", ""),
    ("delivery_fanout", "rate_reached_{large}", "fan-out at {fanout_target:.0f} msg/s to {fanout[large]:,} long-pollers in one room, "
     "send rate reached", "msg/s", "↑"),
    ("delivery_fanout", "p50_ms_{large}", "fan-out to {fanout[large]:,}, delivery p50", "ms", "↓"),
    ("delivery_fanout", "p99_ms_{large}", "fan-out to {fanout[large]:,}, delivery p99", "ms", "↓"),
    ("delivery_fanout", "lost_{large}", "fan-out to {fanout[large]:,}, messages lost", "count", "↓"),
    ("delivery_fanout", "gapped_{large}", "fan-out to {fanout[large]:,}, answers with a gap (limited)", "count", "↓"),
    ("delivery_fanout", "server_cpu_pct_{large}", "fan-out to {fanout[large]:,}, server CPU", "% core", ""),
    ("delivery_fanout", "server_ms_per_sync_{large}", "fan-out to {fanout[large]:,}, server CPU per /sync answered", "ms", "↓"),
    ("delivery_fanout", "loadgen_cpu_pct_{large}", "fan-out to {fanout[large]:,}, load generator CPU", "% core", ""),
    ("initial_sync", "cold_ms", "initial sync, {history_rooms} rooms × {history_messages} msgs, cold (just restarted)",
     "ms", "↓"),
    ("initial_sync", "warm_ms", "initial sync, {history_rooms} rooms, warm (median of the next)", "ms", "↓"),
    ("initial_sync_many", "cold_ms", "initial sync, {many_rooms:,} rooms × 1 msg, cold (just restarted)", "ms", "↓"),
    ("initial_sync_many", "warm_ms", "initial sync, {many_rooms:,} rooms, warm (median of the next)", "ms", "↓"),
    ("initial_sync_huge", "cold_ms", "initial sync, {huge_rooms:,} rooms × 1 msg, cold (just restarted)", "ms", "↓"),
    ("initial_sync_huge", "warm_ms", "initial sync, {huge_rooms:,} rooms, warm (median of the next)", "ms", "↓"),
    ("incremental_sync", "small_p50_ms", "incremental sync, small history, p50", "ms", "↓"),
    ("incremental_sync", "small_p99_ms", "incremental sync, small history, p99", "ms", "↓"),
    ("incremental_sync", "large_p50_ms", "incremental sync, large history, p50", "ms", "↓"),
    ("incremental_sync", "large_p99_ms", "incremental sync, large history, p99", "ms", "↓"),
    ("deep_history", "small_p50_ms", "incremental sync, {senders} rooms of {deep_history_small:,} events, p50", "ms", "↓"),
    ("deep_history", "small_p99_ms", "incremental sync, {deep_history_small:,} events, p99", "ms", "↓"),
    ("deep_history", "large_p50_ms", "incremental sync, {deep_history_large:,} events, p50", "ms", "↓"),
    ("deep_history", "large_p99_ms", "incremental sync, {deep_history_large:,} events, p99", "ms", "↓"),
    ("sliding_sync", "first_ms", "sliding sync, first response, {sliding_rooms:,} rooms, range 0–19", "ms", "↓"),
    ("sliding_sync", "warm_ms", "sliding sync, first response again (median)", "ms", "↓"),
    ("sliding_sync", "incremental_p50_ms", "sliding sync, incremental after one message, p50", "ms", "↓"),
    ("sliding_sync", "incremental_p99_ms", "sliding sync, incremental after one message, p99", "ms", "↓"),
    ("sliding_sync", "deep_p50_ms", "sliding sync, incremental, {sliding_history:,} messages later, p50", "ms", "↓"),
    ("sliding_sync", "deep_p99_ms", "sliding sync, incremental, {sliding_history:,} messages later, p99", "ms", "↓"),
    ("push_rules", "alone_p50_ms", "send alone in a room, one at a time, p50", "ms", "↓"),
    ("push_rules", "room_p50_ms", "send to {push_members:,} members with 3 push rules each, p50", "ms", "↓"),
    ("push_rules", "added_ms", "push rules of {push_members:,} members, added latency per event", "ms", "↓"),
    ("push_rules", "added_cpu_ms", "push rules of {push_members:,} members, added server CPU per event", "ms", "↓"),
    ("keys_query", "p50_ms", "keys/query, {key_users:,} users × 2 devices, p50", "ms", "↓"),
    ("keys_query", "p99_ms", "keys/query, p99", "ms", "↓"),
    ("keys_claim", "p50_ms", "keys/claim, {claim_devices} devices, p50", "ms", "↓"),
    ("keys_claim", "p99_ms", "keys/claim, p99", "ms", "↓"),
    ("to_device", "p50_ms", "to-device fan-out to {fanout_devices:,} devices, p50", "ms", "↓"),
    ("to_device", "p99_ms", "to-device fan-out, p99", "ms", "↓"),
    ("index_cost", "plain_ms", "send, server CPU per message of a type no server indexes", "ms", "↓"),
    ("index_cost", "indexed_ms", "send, server CPU per m.room.message (indexed for search)", "ms", "↓"),
    ("index_cost", "added_ms", "search index, server CPU it adds per message", "ms", "↓"),
    ("push_storage", "push_bytes_per_message", "notification tables, bytes per message in a room of {shared_senders} members", "B", "↓"),
    ("push_storage", "push_mb_per_10k", "notification tables, per 10,000 messages in that room", "MB", "↓"),
    ("push_storage", "db_bytes_per_message", "whole database, bytes per message in that room", "B", "↓"),
    ("search", "step1_rank_ms", "search, {search_rooms} rooms, {search_step1:,} msgs, 1st page by rank, p50", "ms", "↓"),
    ("search", "step1_recent_ms", "search, {search_step1:,} msgs, 1st page by recency, p50", "ms", "↓"),
    ("search", "step2_rank_ms", "search, {search_step2:,} msgs, 1st page by rank, p50", "ms", "↓"),
    ("search", "step2_recent_ms", "search, {search_step2:,} msgs, 1st page by recency, p50", "ms", "↓"),
    ("search", "step3_rank_ms", "search, {search_step3:,} msgs, 1st page by rank, p50", "ms", "↓"),
    ("search", "step3_recent_ms", "search, {search_step3:,} msgs, 1st page by recency, p50", "ms", "↓"),
    ("search", "step3_common_ms", "search, {search_step3:,} msgs, a word in 1 msg of 10, by rank, p50", "ms", "↓"),
    ("search", "filled", "search, messages stored within {search_fill_seconds:.0f} s", "count", "↑"),
    ("media", "upload_mib_s", "media upload, {media_files} × {media_kib} KiB", "MiB/s", "↑"),
    ("media", "download_mib_s", "media download", "MiB/s", "↑"),
    ("thumbnail_memory", "peak_above_mib", "memory peak for the upload and one thumbnail of a 5,700 × 5,700 PNG, "
     "above before", "MiB", "↓"),
    ("thumbnail_memory", "retained_mib", "memory kept one second after that thumbnail", "MiB", "↓"),
]


def fmt(value):
    """Three significant figures at most: the noise between rounds is larger than that."""
    if value is None:
        return "—"
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


class Footnotes:
    """Numbered reasons, each written once however many cells it explains."""

    def __init__(self):
        self.reasons = {}

    def ref(self, reason, what="not served"):
        number = self.reasons.setdefault(reason, len(self.reasons) + 1)
        return f"{what} [{number}]"

    def markdown(self):
        return "\n".join(f"[{n}] {reason}" for reason, n in self.reasons.items())


def cell(records, server, database, scenario, key, notes):
    """The median over rounds and, when it cannot be shown alone, the text to show instead
    (a footnote reference, or how many rounds the median covers)."""
    mine = [
        r
        for r in records
        if r["server"] == server
        and r["scenario"] == scenario
        and (server == "ceiling" or r["database"] == database)
    ]
    if not mine:
        return None, None
    values = [r["metrics"][key] for r in mine if key in r.get("metrics", {})]
    if values and len(values) < len(mine):  # say so when some rounds had no figure
        return median(values), f"{fmt(median(values))} ({len(values)} of {len(mine)} rounds)"
    if values:
        return median(values), None
    failed = next((r for r in mine if r["status"] != "ok"), None)
    if failed is None:
        return None, None
    return None, notes.ref(f"{server}: {failed['reason']}",
                           "not measured" if failed["status"] == "partial" else "not served")


def markdown_table(records, servers, databases, counts):
    """One row per figure; per database a column for each server and the ranvier/Synapse ratio."""
    notes = Footnotes()
    header = ["figure"]
    for db in databases:
        header += [f"{s} ({db})" for s in servers if s != "ceiling"]
        if "ranvier" in servers and "synapse" in servers:
            header.append(f"ratio ({db})")
    if "ceiling" in servers:
        header.append("ceiling")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for scenario, key, label, unit, better in METRICS:
        if not any(r["scenario"] == scenario for r in records):
            continue
        key = key.format(**counts["fanout"])  # the fan-out's keys end in its step's pollers
        row = [f"{label.format(**counts)} ({unit}) {better}".rstrip()]
        for db in databases:
            values = {}
            for s in servers:
                if s == "ceiling":
                    continue
                values[s], note = cell(records, s, db, scenario, key, notes)
                row.append(note or fmt(values[s]))
            if "ranvier" in servers and "synapse" in servers:
                r = ratio(values["ranvier"], values["synapse"])
                row.append("—" if r is None else f"{r:.2f}")
        if "ceiling" in servers:
            value, note = cell(records, "ceiling", None, scenario, key, notes)
            row.append(note or fmt(value))
        lines.append("| " + " | ".join(row) + " |")
    table = "\n".join(lines)
    footnotes = notes.markdown()
    return table + ("\n\n" + footnotes if footnotes else "")
