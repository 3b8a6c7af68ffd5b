"""The detector runner gives each household the lead its check-in policy needs (pure)."""

from __future__ import annotations

from alerting.checkin_policy import checkin_config
from alerting.config import AlertingConfig
from carewatch.detector_runner import household_view_settings


def test_the_lead_is_the_longest_inactivity_check_in_of_the_household() -> None:
    fleet = AlertingConfig()  # two attempts of 10 minutes
    assert household_view_settings({}, "Asia/Shanghai", fleet).checkin_lead_s == 1200.0
    own = {"checkin": {"routine_missed": {"wait_s": 900, "attempts": 3}}}
    assert household_view_settings(own, "Asia/Shanghai", fleet).checkin_lead_s == 2700.0
    off = {"checkin": {"inactivity": {"enabled": False}, "routine_missed": {"enabled": False}}}
    assert household_view_settings(off, "Asia/Shanghai", fleet).checkin_lead_s == 0.0
    quick = AlertingConfig(checkins=checkin_config({"inactivity": {"wait_s": 60, "attempts": 1}}))
    settings = household_view_settings({}, "Europe/London", quick)
    assert (settings.timezone, settings.checkin_lead_s) == ("Europe/London", 1200.0)  # routine keeps its default
