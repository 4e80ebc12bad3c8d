"""The collector is off while any large answer is being built, back on after the last."""

from __future__ import annotations

import gc

import pytest

from ranvier.collector import collector_paused


def test_the_collector_resumes_only_after_the_last_overlapping_pause():
    assert gc.isenabled()
    first, second = collector_paused(), collector_paused()
    first.__enter__()
    assert not gc.isenabled()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled(), "another answer is still being built"
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_failure_while_building_still_resumes_the_collector():
    with pytest.raises(ValueError), collector_paused():
        raise ValueError("the answer failed")
    assert gc.isenabled()
