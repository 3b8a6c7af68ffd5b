"""The pure backtest replays in arrival order and counts raised findings per household and detector."""

from __future__ import annotations

from carewatch.backtest_cli import table
from detectors import DetectorSuiteConfig, HouseholdSettings
from detectors.backtest import replay
from i18n import Language, messages
from schemas.records import Record
from tests.detectors.helpers import BUTTON, HH, METER, at, event, readings


def test_replay_counts_per_household_and_detector_after_warmup() -> None:
    records: list[Record] = [*readings(at(0), at(13)), event("sos", at(5)), event("sos", at(30), seq=2)]
    result = replay(records, [METER, BUTTON], {HH: HouseholdSettings()}, DetectorSuiteConfig(), count_from=at(6))
    assert dict(result.counts) == {
        (HH, "call_sos", "sos"): 1,
        # The meter's last reading is 13:00; ticking runs until the last record (the 06:00 press next day).
        (HH, "health_offline", "device_offline"): 1,
        # The 05:00 press was a sign of life: the quiet counts from it, so no reading reached the 12 h
        # backstop; the meter then fell silent, and at 17:00 nothing could confirm the resident was well.
        (HH, "silence", "inactivity"): 1,
    }
    assert result.records == len(records)
    text = table(result, messages(Language.EN))
    assert "backstop:flat_12h" not in text
    assert "silence" in text
