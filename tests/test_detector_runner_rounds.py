"""How the detector runner cuts pending records into rounds (no broker or database: nothing is evaluated).

A round takes every urgent record and whole uploads of readings: a meter's daily upload stays in one
engine call, where the fleet path can take it, and an sos waits for at most one round of readings.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from alerting.service import AlertingConfig
from carewatch import detector_runner
from carewatch.detector_runner import DetectorRunner
from detectors import DetectorSuiteConfig
from schemas.kinds import DeviceType
from schemas.records import DeviceEvent, MeterSample, Record

T0 = datetime(2024, 3, 4, 0, 15, tzinfo=UTC)


def _upload(device_id: str, n: int) -> list[MeterSample]:
    return [
        MeterSample(device_id, f"h-{device_id}", T0 + timedelta(minutes=15 * i), 100.0 + i, T0 + timedelta(days=1))
        for i in range(n)
    ]


def _sos(device_id: str) -> DeviceEvent:
    return DeviceEvent(device_id, f"h-{device_id}", DeviceType.CALL_BUTTON, T0, 1, "sos", T0)


def _runner() -> DetectorRunner:
    return DetectorRunner(
        conninfo="postgresql://unused",
        config=DetectorSuiteConfig(),
        alerting=AlertingConfig(),
        on_alerts=lambda _: None,
    )


def _drain(runner: DetectorRunner) -> list[tuple[list[Record], list[MeterSample]]]:
    rounds: list[tuple[list[Record], list[MeterSample]]] = []
    while True:
        urgent, bulk = runner._take(timeout=0.0)
        if not urgent and not bulk:
            return rounds
        rounds.append((urgent, bulk))


def _runs(records: Sequence[Record]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for record in records:
        if out and out[-1][0] == record.device_id:
            out[-1] = (record.device_id, out[-1][1] + 1)
        else:
            out.append((record.device_id, 1))
    return out


def test_rounds_take_whole_uploads_up_to_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detector_runner, "UPLOADS_PER_ROUND", 3)
    monkeypatch.setattr(detector_runner, "READINGS_PER_ROUND", 100)
    runner = _runner()
    # Daily uploads of 40, hourly ones of 4, one committed batch with an sos in the middle.
    sos = _sos("call")
    batch: list[Record] = [*_upload("a", 40), *_upload("b", 4), sos, *_upload("c", 40), *_upload("d", 40)]
    runner.submit_records(batch)
    runner.submit_records([*_upload("e", 4), *_upload("f", 250)])
    rounds = _drain(runner)
    assert [_runs(bulk) for _, bulk in rounds] == [
        [("a", 40), ("b", 4), ("c", 40)],  # three uploads: the limit of uploads
        [("d", 40), ("e", 4)],  # the next whole upload would pass 100 readings
        [("f", 100)],  # an upload longer than a round is cut at the reading limit
        [("f", 100)],
        [("f", 50)],
    ]
    assert [urgent for urgent, _ in rounds] == [[sos], [], [], [], []]
    # Nothing lost, nothing doubled, order kept within every device.
    taken = [record for _, bulk in rounds for record in bulk]
    assert taken == [record for record in batch if isinstance(record, MeterSample)] + _upload("e", 4) + _upload(
        "f", 250
    )
    assert runner._bulk_readings == 0


def test_pending_readings_are_counted_for_back_pressure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detector_runner, "UPLOADS_PER_ROUND", 2)
    runner = _runner()
    runner.submit_records(_upload("a", 96) + _upload("b", 96) + _upload("c", 96))
    assert runner._bulk_readings == 288
    urgent, bulk = runner._take(timeout=0.0)
    assert urgent == []
    assert _runs(bulk) == [("a", 96), ("b", 96)]
    assert runner._bulk_readings == 96
