"""Prometheus metrics without a client library: counters, gauges and histograms with
optional labels, the registry that holds them next to the process's and Python's own
metrics, and their exposition in the Prometheus text format 0.0.4. Written here rather
than imported: prometheus-client's package imports about 1 MiB of modules ranvier has no
use for (its HTTP and WSGI servers, OpenMetrics, the multiprocess mode's files).

The series are the ones prometheus-client writes, so scrapers and dashboards see no
difference: a counter declared as `x` is exposed as `x_total` plus `x_created` (when each
of its children was made, in seconds since the epoch), a histogram as cumulative
`x_bucket{le=...}` ending at `+Inf`, `x_count`, `x_sum` and `x_created`; labels in the
order of their names; values written as that library writes them.

Every update runs on the event loop's thread (the database engines time a read around the
executor call, never inside it), so values are plain floats without a lock: two threads
adding at once could lose an increment, one thread cannot.
"""

from __future__ import annotations

import bisect
import functools
import gc
import itertools
import os
import platform
import time
from abc import ABC, abstractmethod
from typing import Callable, Generic, Iterable, NamedTuple, Sequence, TypeVar

#: The Content-Type of `render_text()`'s output.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_INF = float("inf")


class Sample(NamedTuple):
    """One line of the exposition: a series and its value."""

    name: str
    labels: dict[str, str]
    value: float


class Family(NamedTuple):
    """What one `# HELP` and `# TYPE` pair introduces: its name, type and samples."""

    name: str
    kind: str
    documentation: str
    samples: list[Sample]


Collector = Callable[[], Iterable[Family]]


class Registry:
    """The collectors of one exposition, in the order they were registered."""

    def __init__(self) -> None:
        self._collectors: list[Collector] = []

    def register(self, collector: Collector) -> None:
        self._collectors.append(collector)

    def collect(self) -> Iterable[Family]:
        for collector in self._collectors:
            yield from collector()


# -- metrics ---------------------------------------------------------------------------


class CounterChild:
    """The value of a counter for one combination of label values."""

    __slots__ = ("value", "created")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.value += amount


class GaugeChild:
    """The value of a gauge for one combination of label values: moved, or read from a
    function at each exposition."""

    __slots__ = ("_value", "_function")

    def __init__(self) -> None:
        self._value = 0.0
        self._function: Callable[[], float] | None = None

    def inc(self, amount: float = 1.0) -> None:
        self._value += amount

    def dec(self, amount: float = 1.0) -> None:
        self._value -= amount

    def set_function(self, function: Callable[[], float]) -> None:
        """Read the value from `function` from now on."""
        self._function = function

    @property
    def value(self) -> float:
        return float(self._function()) if self._function is not None else self._value


class HistogramChild:
    """The observations of a histogram for one combination of label values: a count per
    bucket (cumulated only when read), and their sum."""

    __slots__ = ("bounds", "counts", "sum", "created")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1  # the first bucket whose bound is >= value
        self.sum += value

    def cumulative(self) -> list[int]:
        """The count of each bucket `le` its bound, the last one (`+Inf`) all of them."""
        return list(itertools.accumulate(self.counts))

    @property
    def count(self) -> int:
        return sum(self.counts)


ChildT = TypeVar("ChildT", CounterChild, GaugeChild, HistogramChild)


class _Metric(ABC, Generic[ChildT]):
    """A named metric and its children, one per combination of label values; a metric
    without label names has one child, which its own methods update. Each kind says how
    its children are made and how they are exposed."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (), *,
                 registry: Registry | None = None) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], ChildT] = {}
        (registry or REGISTRY).register(self.collect)
        if not self.labelnames:
            self._only = self.labels()

    @abstractmethod
    def _new_child(self) -> ChildT:
        """A child of this kind, at zero."""

    @abstractmethod
    def collect(self) -> list[Family]:
        """The families this metric's children are exposed as."""

    def labels(self, *values: object) -> ChildT:
        """The child for these label values (in the order of the label names), made on
        first use and kept."""
        key = tuple(map(str, values))
        child = self._children.get(key)
        if child is None:
            if len(key) != len(self.labelnames):
                raise ValueError(f"{self.name} takes the labels {self.labelnames}, not {values}")
            child = self._children[key] = self._new_child()
        return child

    def children(self) -> Iterable[tuple[tuple[str, ...], ChildT]]:
        """(label values, child) of every child made so far."""
        return self._children.items()

    def _labels(self, key: tuple[str, ...]) -> dict[str, str]:
        return dict(zip(self.labelnames, key))

    def _created(self) -> list[Family]:
        """The `_created` family of a counter or histogram, when it has children."""
        samples = [Sample(self.name + "_created", self._labels(key), child.created) for key, child in self.children()]
        return [Family(self.name + "_created", "gauge", self.documentation, samples)] if samples else []


class Counter(_Metric[CounterChild]):
    """Declared without the `_total` its samples are exposed with."""

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def inc(self, amount: float = 1.0) -> None:
        self._only.inc(amount)

    @property
    def value(self) -> float:
        return self._only.value

    def collect(self) -> list[Family]:
        name = self.name + "_total"
        samples = [Sample(name, self._labels(key), child.value) for key, child in self.children()]
        return [Family(name, "counter", self.documentation, samples)] + self._created()


class Gauge(_Metric[GaugeChild]):
    """A value that goes up and down, exposed under its own name."""

    def _new_child(self) -> GaugeChild:
        return GaugeChild()

    def inc(self, amount: float = 1.0) -> None:
        self._only.inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._only.dec(amount)

    def set_function(self, function: Callable[[], float]) -> None:
        """Read the value from `function` at each exposition from now on."""
        self._only.set_function(function)

    @property
    def value(self) -> float:
        return self._only.value

    def collect(self) -> list[Family]:
        samples = [Sample(self.name, self._labels(key), child.value) for key, child in self.children()]
        return [Family(self.name, "gauge", self.documentation, samples)]


class Histogram(_Metric[HistogramChild]):
    """Observations counted in buckets by upper bound (`le`, inclusive); a `+Inf` bucket
    is added after the given bounds."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (), *,
                 buckets: Sequence[float], registry: Registry | None = None) -> None:
        bounds = tuple(float(bound) for bound in buckets)
        if any(lower >= upper for lower, upper in zip(bounds, bounds[1:])):
            raise ValueError(f"{name}: bucket bounds must increase")
        self.bounds = bounds if bounds and bounds[-1] == _INF else bounds + (_INF,)
        #: The `le` label of each bucket.
        self.bucket_labels = tuple(format_value(bound) for bound in self.bounds)
        super().__init__(name, documentation, labelnames, registry=registry)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self.bounds)

    def observe(self, value: float) -> None:
        self._only.observe(value)

    def collect(self) -> list[Family]:
        samples = []
        for key, child in self.children():
            labels = self._labels(key)
            cumulative = child.cumulative()
            samples += [Sample(self.name + "_bucket", {**labels, "le": le}, count)
                        for le, count in zip(self.bucket_labels, cumulative)]
            samples += [Sample(self.name + "_count", labels, cumulative[-1]),
                        Sample(self.name + "_sum", labels, child.sum)]
        return [Family(self.name, "histogram", self.documentation, samples)] + self._created()


# -- the process and Python ------------------------------------------------------------


class ProcessStats(NamedTuple):
    """What /proc/self/stat says of this process, in seconds and bytes."""

    cpu_seconds: float
    resident_bytes: float
    virtual_bytes: float
    start_time: float


@functools.cache
def _boot_time() -> float:
    """When the system started, in seconds since the epoch."""
    with open("/proc/stat", "rb") as stat:
        return float(next(line.split()[1] for line in stat if line.startswith(b"btime ")))


def process_stats() -> ProcessStats | None:
    """This process's CPU time (user and system), memory and start time, read from
    /proc/self/stat; None where there is no /proc."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()  # after the command, which may hold spaces
        boot_time = _boot_time()
    except OSError:
        return None
    # proc(5)'s fields from the third (state) on: utime and stime (clock ticks) at 11 and 12,
    # starttime (ticks after boot) at 19, vsize (bytes) at 20, rss (pages) at 21.
    ticks = os.sysconf("SC_CLK_TCK")
    return ProcessStats(cpu_seconds=(int(fields[11]) + int(fields[12])) / ticks,
                        resident_bytes=float(int(fields[21]) * os.sysconf("SC_PAGE_SIZE")),
                        virtual_bytes=float(fields[20]), start_time=boot_time + int(fields[19]) / ticks)


def _single(name: str, kind: str, documentation: str, value: float) -> Family:
    return Family(name, kind, documentation, [Sample(name, {}, value)])


def _file_descriptors() -> tuple[int, float]:
    """How many file descriptors are open, and the soft limit."""
    opened = len(os.listdir("/proc/self/fd"))
    with open("/proc/self/limits", "rb") as limits:
        soft = next(line.split()[3] for line in limits if line.startswith(b"Max open files"))
    return opened, _INF if soft == b"unlimited" else float(soft)


def process_families() -> list[Family]:
    """`process_*`: CPU time, memory, start time and file descriptors (none without /proc)."""
    stats = process_stats()
    if stats is None:
        return []
    families = [
        _single("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", stats.virtual_bytes),
        _single("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", stats.resident_bytes),
        _single("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
                stats.start_time),
        _single("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
                stats.cpu_seconds),
    ]
    try:
        opened, limit = _file_descriptors()
    except OSError:
        return families
    return families + [_single("process_open_fds", "gauge", "Number of open file descriptors.", opened),
                       _single("process_max_fds", "gauge", "Maximum number of open file descriptors.", limit)]


def _python_info() -> Family:
    major, minor, patchlevel = platform.python_version_tuple()
    labels = {"implementation": platform.python_implementation(), "major": major, "minor": minor,
              "patchlevel": patchlevel, "version": platform.python_version()}
    return Family("python_info", "gauge", "Python platform information", [Sample("python_info", labels, 1.0)])


_PYTHON_INFO = _python_info()


def python_families() -> list[Family]:
    """`python_info` and the garbage collector's counts by generation."""
    stats = gc.get_stats()

    def by_generation(name: str, documentation: str, key: str) -> Family:
        return Family(name, "counter", documentation,
                      [Sample(name, {"generation": str(generation)}, float(counts[key]))
                       for generation, counts in enumerate(stats)])

    return [_PYTHON_INFO,
            by_generation("python_gc_objects_collected_total", "Objects collected during gc", "collected"),
            by_generation("python_gc_objects_uncollectable_total", "Uncollectable objects found during GC",
                          "uncollectable"),
            by_generation("python_gc_collections_total", "Number of times this generation was collected",
                          "collections")]


#: The process's registry: its own and Python's metrics, and every metric declared
#: without a registry of its own.
REGISTRY = Registry()
REGISTRY.register(process_families)
REGISTRY.register(python_families)


# -- exposition ------------------------------------------------------------------------


def format_value(value: float) -> str:
    """A value or bucket bound as prometheus-client writes it: Python's shortest form
    (`1.0`, `0.005`, `1e-05`), Go's `+Inf`, `-Inf` and `NaN`, and Go's exponent from a
    million up (`4.5645824e+07`, where Python writes every digit up to 1e16)."""
    value = float(value)  # bucket counts are ints
    if value != value:
        return "NaN"
    if value in (_INF, -_INF):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    whole, point, fraction = text.partition(".")
    if value <= 0 or not point or len(whole) <= 6:
        return text
    digits = (whole + fraction).rstrip("0")
    return f"{digits[0]}{'.' if len(digits) > 1 else ''}{digits[1:]}e+{len(whole) - 1:02d}"


def _escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _sample_line(sample: Sample) -> str:
    labels = ",".join(f'{name}="{_escape_label_value(value)}"' for name, value in sorted(sample.labels.items()))
    braced = f"{{{labels}}}" if labels else ""
    return f"{sample.name}{braced} {format_value(sample.value)}\n"


def render_text(registry: Registry | None = None) -> bytes:
    """Every metric of `registry` (the process's by default) in the Prometheus text
    format 0.0.4, encoded in UTF-8."""
    lines = []
    for family in (registry or REGISTRY).collect():
        documentation = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
        lines.append(f"# HELP {family.name} {documentation}\n# TYPE {family.name} {family.kind}\n")
        lines += map(_sample_line, family.samples)
    return "".join(lines).encode()
