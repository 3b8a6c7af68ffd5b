"""Faults: each kind produces the bad data it promises, and is written to the ground truth."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import pytest
from pydantic import ValidationError

from schemas.device import MAX_PAYLOAD_BYTES
from simulator import FaultKind, FaultPlan
from tests.simulator.helpers import small_fleet, validate


def _run(kinds: str, rate: float = 0.05) -> tuple[list, list, dict]:  # type: ignore[type-arg]
    fleet = small_fleet(homes=10)
    types = {d.device_id: d.device_type for d in fleet.devices}
    sim = fleet.simulate(timedelta(hours=30), faults=FaultPlan.parse(rate, kinds))
    messages = list(sim)
    return messages, [r for r in sim.ground_truth() if r.category == "fault"], types


def test_malformed_payloads_fail_validation() -> None:
    messages, truth, types = _run("malformed")
    bad = [m for m in messages if m.kind == "fault_malformed"]
    assert bad
    assert len(bad) == len(truth)
    for message in bad:
        channel = message.topic.rsplit("/", 1)[-1]
        with pytest.raises((ValidationError, ValueError)):
            validate(types[message.device_id], channel, message.payload)
    assert {r.detail["expected_reject"] for r in truth} >= {"invalid_json", "not_object", "missing_field"}


def test_oversized_and_wrong_topics() -> None:
    messages, truth, types = _run("oversized,wrong_device_topic")
    oversized = [m for m in messages if m.kind == "fault_oversized"]
    assert oversized
    assert all(len(m.payload) > MAX_PAYLOAD_BYTES for m in oversized)
    wrong = [m for m in messages if m.kind == "fault_wrong_device_topic"]
    assert wrong
    reasons = Counter(r.detail["expected_reject"] for r in truth if r.kind == "wrong_device_topic")
    assert set(reasons) <= {"shape_mismatch", "unknown_device", "bad_topic"}
    for message in wrong:
        device_id, channel = message.topic.rsplit("/", 2)[-2:]
        if device_id in types and channel in ("telemetry", "event", "status"):
            with pytest.raises((ValidationError, ValueError)):
                validate(types[device_id], channel, message.payload)


def test_duplicates_bursts_and_delays_keep_payloads() -> None:
    messages, truth, _ = _run("duplicate,burst,reorder,late_batch", rate=0.05)
    kinds = Counter(m.kind for m in messages)
    assert kinds["fault_duplicate"]
    assert kinds["fault_burst"] >= 50
    assert kinds["fault_reorder"]
    payloads = Counter(m.payload for m in messages)
    for message in messages:
        if message.kind in ("fault_duplicate", "fault_burst"):
            assert payloads[message.payload] >= 2  # the original went out too
    times = [m.at_ms for m in messages]
    assert times == sorted(times)  # delayed copies are published later, in order
    assert {r.kind for r in truth} >= {"duplicate", "burst", "reorder"}


def test_clock_skew_shifts_timestamps() -> None:
    fleet = small_fleet(homes=10)
    clean = {(m.topic, m.at_ms): m for m in fleet.simulate(timedelta(hours=4))}
    plan = FaultPlan(rate=0.0, kinds=frozenset({FaultKind.CLOCK_SKEW}), skew_fraction=0.5)
    sim = fleet.simulate(timedelta(hours=4), faults=plan)
    shifted = 0
    for message in sim:
        original = clean[(message.topic, message.at_ms)]
        if message.payload != original.payload:
            shifted += 1
            assert json.loads(message.payload)["seq"] == json.loads(original.payload)["seq"]
    skewed = [r for r in sim.ground_truth() if r.kind == "clock_skew"]
    assert shifted
    assert skewed
