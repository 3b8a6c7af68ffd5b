"""The pure policy: configuration, escalation timing, quiet hours and working hours; rendering; the fake."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from alerting.channels import Delivery, FakeChannel
from alerting.policy import DEFAULT_POLICY, PolicyError, policy_from_config
from alerting.render import DEFAULT_SMS_TEMPLATE, email_subject, sms_text
from schemas.care import WorkingHours
from schemas.kinds import Severity

SHANGHAI = "Asia/Shanghai"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_default_policy_matches_the_issue() -> None:
    start = utc("2025-03-04T10:00:00+08:00")
    assert DEFAULT_POLICY.step(Severity.CRITICAL, 0).tiers == {1, 2}  # type: ignore[union-attr]
    assert DEFAULT_POLICY.next_due(Severity.CRITICAL, 0, start) == start + timedelta(minutes=3)
    assert DEFAULT_POLICY.next_due(Severity.CRITICAL, 1, start) is None
    assert DEFAULT_POLICY.next_due(Severity.HIGH, 0, start) == start + timedelta(minutes=15)
    assert DEFAULT_POLICY.next_due(Severity.HIGH, 1, start) == start + timedelta(minutes=15)  # 30 min in all
    assert DEFAULT_POLICY.step(Severity.HIGH, 2).tiers == {3}  # type: ignore[union-attr]
    assert DEFAULT_POLICY.next_due(Severity.NORMAL, 0, start) is None


def test_policy_from_config_overrides_one_severity_and_keeps_the_rest() -> None:
    policy = policy_from_config({"critical": [{"tiers": [1], "wait_s": 60}, {"tiers": [2, 3]}]}, quiet_hours="")
    start = utc("2025-03-04T10:00:00+08:00")
    assert policy.next_due(Severity.CRITICAL, 0, start) == start + timedelta(seconds=60)
    assert policy.step(Severity.CRITICAL, 1).tiers == {2, 3}  # type: ignore[union-attr]
    assert policy.steps[Severity.HIGH] == DEFAULT_POLICY.steps[Severity.HIGH]
    assert policy.quiet_hours is None


@pytest.mark.parametrize(
    ("steps", "quiet", "key"),
    [
        ({"urgent": [{"tiers": [1]}]}, "22:00-07:00", "urgent"),
        ({"high": [{"tiers": [1]}, {"tiers": [2]}]}, "22:00-07:00", "high[0]"),
        ({"high": [{"tiers": [0]}]}, "22:00-07:00", "high[0]"),
        ({"high": [{"tiers": [1], "wait_s": -1}]}, "22:00-07:00", "high[0]"),
        ({"high": []}, "22:00-07:00", "high"),
        (None, "22:00", "quiet_hours"),
        (None, "25:00-07:00", "quiet_hours"),
    ],
)
def test_bad_policy_configuration_names_the_entry(
    steps: dict[str, list[dict[str, object]]] | None, quiet: str, key: str
) -> None:
    with pytest.raises(PolicyError) as raised:
        policy_from_config(steps, quiet_hours=quiet)
    assert raised.value.key == key


def test_quiet_hours_hold_low_severity_only() -> None:
    late = utc("2025-03-04T23:30:00+08:00")
    assert DEFAULT_POLICY.not_before(Severity.LOW, late, SHANGHAI, None) == utc("2025-03-05T07:00:00+08:00")
    assert DEFAULT_POLICY.not_before(Severity.NORMAL, late, SHANGHAI, None) == late
    assert DEFAULT_POLICY.not_before(Severity.CRITICAL, late, SHANGHAI, None) == late
    early = utc("2025-03-05T06:10:00+08:00")
    assert DEFAULT_POLICY.not_before(Severity.LOW, early, SHANGHAI, None) == utc("2025-03-05T07:00:00+08:00")
    day = utc("2025-03-05T12:00:00+08:00")
    assert DEFAULT_POLICY.not_before(Severity.LOW, day, SHANGHAI, None) == day


def test_working_hours_queue_normal_and_low_but_never_critical_or_high() -> None:
    office = WorkingHours(days=[1, 2, 3, 4, 5], start=time(9), end=time(17, 30))
    saturday = utc("2025-03-08T10:00:00+08:00")
    monday_9 = utc("2025-03-10T09:00:00+08:00")
    assert DEFAULT_POLICY.not_before(Severity.NORMAL, saturday, SHANGHAI, office) == monday_9
    assert DEFAULT_POLICY.not_before(Severity.HIGH, saturday, SHANGHAI, office) == saturday
    assert DEFAULT_POLICY.not_before(Severity.CRITICAL, saturday, SHANGHAI, office) == saturday
    tuesday_noon = utc("2025-03-04T12:00:00+08:00")
    assert DEFAULT_POLICY.not_before(Severity.NORMAL, tuesday_noon, SHANGHAI, office) == tuesday_noon
    friday_evening = utc("2025-03-07T18:00:00+08:00")
    assert DEFAULT_POLICY.not_before(Severity.LOW, friday_evening, SHANGHAI, office) == monday_9


def test_overnight_working_hours_and_quiet_hours_combine() -> None:
    night_shift = WorkingHours(days=[1, 2, 3, 4, 5, 6, 7], start=time(20), end=time(8))
    # 02:00 is inside the night shift (opened the evening before) but inside quiet hours for low.
    two_am = utc("2025-03-05T02:00:00+08:00")
    assert DEFAULT_POLICY.not_before(Severity.NORMAL, two_am, SHANGHAI, night_shift) == two_am
    assert DEFAULT_POLICY.not_before(Severity.LOW, two_am, SHANGHAI, night_shift) == utc("2025-03-05T07:00:00+08:00")
    # 12:00: outside the shift; low waits for 20:00 (not quiet yet).
    noon = utc("2025-03-05T12:00:00+08:00")
    assert DEFAULT_POLICY.not_before(Severity.LOW, noon, SHANGHAI, night_shift) == utc("2025-03-05T20:00:00+08:00")


def test_sms_template_fills_fields_and_cannot_reach_attributes() -> None:
    body = {"severity": "critical", "kind": "sos", "household_id": "hh-1", "evidence": "button pressed", "alert_id": 7}
    assert (
        sms_text(DEFAULT_SMS_TEMPLATE, body)
        == "carewatch CRITICAL emergency call, household hh-1: button pressed (alert 7)"
    )
    assert sms_text("$kind ${kind.__class__} $nope", body) == "sos ${kind.__class__} $nope"
    assert len(sms_text("$evidence", {**body, "evidence": "x" * 1000}, limit=100)) == 100
    assert email_subject({**body, "reason": "claimed_by_other"}).startswith("Claimed: [carewatch CRITICAL]")


def test_fake_channel_fails_on_request_then_records() -> None:
    fake = FakeChannel(fail_next=2)
    delivery = Delivery(notification_id=1, idempotency_key="k", caregiver_id="cg", body={})
    assert [fake.send(delivery).ok for _ in range(3)] == [False, False, True]
    assert fake.attempts == 3
    assert fake.sent == [delivery]
    assert FakeChannel(fail_next=1, permanent=True).send(delivery).permanent
