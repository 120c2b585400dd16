"""Fixtures for the compat suite: `broker` starts real strom processes for one test."""

from __future__ import annotations

import itertools
import re

import pytest

from strom_harness import Broker, close_clients

_topic_counter = itertools.count()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)  # lets fixtures see how the test went
    brokers = getattr(item, "_strom_brokers", [])
    if report.failed and brokers:
        for b in brokers:
            state = "alive" if b.alive() else f"exited with {b.proc.returncode if b.proc else None}"
            report.sections.append((f"strom on {b.bootstrap} ({state})", b.log_tail(80)))


@pytest.fixture
def broker(request, tmp_path):
    """Factory: `broker("num.partitions=3", ...)` starts a strom with these extra Kafka property
    overrides and returns a started `Broker`. Every broker is stopped when the test ends; a test
    that fails gets the tail of each broker's log in its report."""
    started: list[Broker] = []
    request.node._strom_brokers = started

    def start(*overrides: str) -> Broker:
        for kv in overrides:
            assert "=" in kv, f"override {kv!r} is not key=value"
        b = Broker(tmp_path / f"broker{len(started)}", overrides)
        started.append(b)
        return b.start()

    try:
        yield start
    finally:
        close_clients()
        for b in started:
            b.stop()


@pytest.fixture
def topic(request):
    """A topic name unique within the run, derived from the test's name."""
    base = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:150]
    return f"{base}-{next(_topic_counter)}"
