"""Detectors: carewatch's judgement, pure and replayable.

Public surface::

    from detectors import Engine, DetectorSuiteConfig, HouseholdSettings

A frozen :class:`DetectorSuiteConfig` builds per-device logic (water meter, smoke alarm, call button,
device health) that the :class:`Engine` feeds committed records in device time and a processing-time
ticker; nothing here reads the wall clock or does I/O, so the same code runs live, in backtests
(:mod:`detectors.backtest`) and in tests. See ``docs/detectors.md`` for each detector's rules.
"""

from detectors.config import (
    DetectorSuiteConfig,
    EventConfig,
    ExcessConfig,
    FlatRuleConfig,
    FlowConfig,
    HealthConfig,
    HouseholdSettings,
    Period,
    QuietWindow,
    RoutineConfig,
    SilenceConfig,
)
from detectors.engine import Engine

__all__ = [
    "DetectorSuiteConfig",
    "Engine",
    "EventConfig",
    "ExcessConfig",
    "FlatRuleConfig",
    "FlowConfig",
    "HealthConfig",
    "HouseholdSettings",
    "Period",
    "QuietWindow",
    "RoutineConfig",
    "SilenceConfig",
]
