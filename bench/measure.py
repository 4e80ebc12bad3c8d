"""The numbers behind every figure: percentiles, medians, ratios, and what /proc says.

Kept free of I/O other than /proc reads so that test_bench.py can check it in milliseconds.
"""

import math
import os
import platform
import statistics

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values, q):
    """Nearest-rank percentile: always a latency that was really observed, so a p99 over
    few samples is the worst one rather than an interpolation between two."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def median(values):
    """Median of the figures that exist; None when a server produced none in any round."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(ours, theirs):
    """ranvier/Synapse, or None when either side has no figure (or Synapse's is zero)."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def _stat(pid):
    """Fields of /proc/PID/stat after the command name, which may itself hold spaces and ')'."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2 :].split()


def process_tree(root):
    """The root PID and all its live descendants: a server's workers count as the server."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(int(_stat(entry)[1]), []).append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                continue
    # /proc is read one process at a time while others start and end: a reused PID can make
    # the snapshot's parent links loop, so each PID is taken once.
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pids):
    """User+system CPU of the processes, children they already reaped included (cutime,
    cstime), so a PostgreSQL backend that exits mid-run is still counted by the postmaster."""
    total = 0
    for pid in pids:
        try:
            fields = _stat(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += sum(int(x) for x in fields[11:15])
    return total / CLOCK_TICKS


def pss_bytes(pids):
    """Proportional set size: shared pages are split between the processes sharing them,
    so summing PSS over a server and its PostgreSQL backends does not count them twice."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def reset_peak_rss(pids):
    """Restart each process's peak resident set (VmHWM) from its present size, so that a
    later `status_bytes(pids, "VmHWM")` is the peak of what happened in between."""
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except (FileNotFoundError, ProcessLookupError):
            continue


def status_bytes(pids, field):
    """The sum of one /proc/PID/status size (VmRSS, VmHWM) over the processes."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1]) * 1024
                        break
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def machine():
    """What the figures were measured on: they mean little without it."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
    }
