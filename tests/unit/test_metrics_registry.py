"""ranvier's own Prometheus metrics and their text exposition, read back with
prometheus-client's parser: an independent check that scrapers get valid text and the
series prometheus-client itself would expose."""

from __future__ import annotations

import gc
import math
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ranvier.metrics_registry import (CONTENT_TYPE, REGISTRY, Counter, Gauge, Histogram, Registry, format_value,
                                      process_families, process_stats, python_families, render_text)

AWKWARD = ['back\\slash', 'a "quoted" word', 'two\nlines', 'trailing\\', '{braces},commas=equals', 'ünïcødé', '']


def parsed(registry: Registry) -> dict:
    """{family name: family} of the registry's exposition, as the parser reads it."""
    families = {family.name: family for family in text_string_to_metric_families(render_text(registry).decode())}
    assert all(family.type != "untyped" for family in families.values())  # each sample inside its declared family
    return families


def test_content_type_is_the_text_format_0_0_4():
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


def test_counters_are_exposed_as_total_and_created_with_awkward_labels_round_tripping():
    registry = Registry()
    counter = Counter("test_things", "Things done,\nwith a \\ in the help", ["kind", "outcome"], registry=registry)
    for n, value in enumerate(AWKWARD):
        counter.labels(value, "ok").inc(n + 1)
    before = time.time()
    Counter("test_later", "Made later", registry=registry).inc(2.5)
    families = parsed(registry)
    things = families["test_things"]
    assert things.type == "counter" and things.documentation == "Things done,\nwith a \\ in the help"
    assert {(sample.name, sample.labels["kind"], sample.labels["outcome"], sample.value)
            for sample in things.samples} == {("test_things_total", value, "ok", n + 1.0)
                                              for n, value in enumerate(AWKWARD)}
    created = families["test_things_created"]
    assert created.type == "gauge"
    assert sorted(sample.labels["kind"] for sample in created.samples) == sorted(AWKWARD)
    later = families["test_later_created"].samples[0]
    assert later.labels == {} and before - 1 < later.value <= time.time()
    assert families["test_later"].samples[0].value == 2.5


def test_a_labelled_metric_without_children_has_no_samples_and_no_created():
    registry = Registry()
    Counter("test_unused", "Never counted", ["kind"], registry=registry)
    Histogram("test_unused_seconds", "Never observed", ["kind"], buckets=(1.0,), registry=registry)
    families = parsed(registry)
    assert families["test_unused"].samples == [] and families["test_unused_seconds"].samples == []
    assert "test_unused_created" not in families and "test_unused_seconds_created" not in families


def test_labels_are_cached_checked_and_written_in_name_order():
    registry = Registry()
    counter = Counter("test_ordered", "Ordered", ["zebra", "alpha"], registry=registry)
    assert counter.labels("z", "a") is counter.labels("z", "a")
    with pytest.raises(ValueError):
        counter.labels("only one")
    counter.labels("z", "a").inc()
    assert 'test_ordered_total{alpha="a",zebra="z"} 1.0\n' in render_text(registry).decode()


def test_counters_only_go_up():
    counter = Counter("test_up", "Up", registry=Registry())
    counter.inc()
    with pytest.raises(ValueError):
        counter.inc(-1)
    assert counter.value == 1.0


def test_gauges_move_or_are_read_from_a_function():
    registry = Registry()
    moved, read = Gauge("test_moved", "Moved", registry=registry), Gauge("test_read", "Read", registry=registry)
    moved.inc(3)
    moved.dec()
    assert moved.value == 2.0
    levels = iter([4, 5])
    read.set_function(lambda: next(levels))
    families = parsed(registry)
    assert families["test_moved"].type == "gauge" and families["test_moved"].samples[0].value == 2.0
    assert families["test_read"].samples[0].value == 4.0
    assert read.value == 5.0


def test_histogram_buckets_are_cumulative_and_end_at_inf():
    registry = Registry()
    histogram = Histogram("test_seconds", "Durations", ["kind"], buckets=(0.005, 0.1, 1, 30), registry=registry)
    observations = [0.001, 0.005, 0.05, 0.1, 0.5, 2.0, 100.0]  # a value on a bound counts in that bucket (le)
    for value in observations:
        histogram.labels("read").observe(value)
    histogram.labels("write").observe(0.2)
    family = parsed(registry)["test_seconds"]
    assert family.type == "histogram"
    read = [sample for sample in family.samples if sample.labels["kind"] == "read"]
    buckets = [(sample.labels["le"], sample.value) for sample in read if sample.name == "test_seconds_bucket"]
    assert buckets == [("0.005", 2.0), ("0.1", 4.0), ("1.0", 5.0), ("30.0", 6.0), ("+Inf", 7.0)]
    by_name = {sample.name: sample.value for sample in read}
    assert by_name["test_seconds_count"] == buckets[-1][1] == len(observations)
    assert by_name["test_seconds_sum"] == pytest.approx(sum(observations))
    child = histogram.labels("read")
    assert child.count == len(observations) and child.cumulative()[-1] == len(observations)
    assert [sample.labels["kind"] for sample in parsed(registry)["test_seconds_created"].samples] == ["read", "write"]


def test_histogram_bounds_must_increase():
    with pytest.raises(ValueError):
        Histogram("test_bad_seconds", "Bad", buckets=(1.0, 0.5), registry=Registry())
    assert Histogram("test_inf_seconds", "Inf", buckets=(1.0, math.inf), registry=Registry()).bucket_labels \
        == ("1.0", "+Inf")


@pytest.mark.parametrize("value, text", [
    (1, "1.0"), (0.0, "0.0"), (0.005, "0.005"), (0.00001, "1e-05"), (2.5, "2.5"), (123456.0, "123456.0"),
    (1e6, "1e+06"), (45645824.0, "4.5645824e+07"), (1796209634.03, "1.79620963403e+09"), (1e20, "1e+20"),
    (-50000000.0, "-50000000.0"), (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN"),
])
def test_values_are_written_as_prometheus_client_writes_them(value, text):
    assert format_value(value) == text


def test_process_metrics_are_present_and_plausible():
    registry = Registry()
    registry.register(process_families)
    families = parsed(registry)
    value = {name: family.samples[0].value for name, family in families.items()}
    assert families["process_cpu_seconds"].type == "counter"
    assert 0 < value["process_resident_memory_bytes"] <= value["process_virtual_memory_bytes"]
    assert time.time() - 7 * 86400 < value["process_start_time_seconds"] <= time.time()
    assert 3 <= value["process_open_fds"] <= value["process_max_fds"]
    before = process_stats()
    deadline = time.process_time() + 0.1
    while time.process_time() < deadline:
        sum(range(100_000))
    after = process_stats()
    assert after.cpu_seconds - before.cpu_seconds >= 0.05


def test_python_info_and_gc_counters_by_generation():
    registry = Registry()
    registry.register(python_families)
    before = parsed(registry)
    generations = [sample.labels["generation"] for sample in before["python_gc_collections"].samples]
    assert generations == [str(n) for n in range(len(gc.get_stats()))]
    for name in ("python_gc_objects_collected", "python_gc_objects_uncollectable"):
        assert before[name].type == "counter" and len(before[name].samples) == len(generations)
    info = before["python_info"].samples[0]
    assert info.labels["implementation"] == "CPython" and info.labels["version"].startswith(
        f"{info.labels['major']}.{info.labels['minor']}.") and info.value == 1.0
    gc.collect()
    oldest_after = parsed(registry)["python_gc_collections"].samples[-1].value
    assert oldest_after >= before["python_gc_collections"].samples[-1].value + 1


def test_the_default_registry_has_the_process_and_python_families():
    names = {family.name for family in REGISTRY.collect()}
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total", "python_info",
            "python_gc_collections_total"} <= names
