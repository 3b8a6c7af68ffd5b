"""``carewatch backtest``: replay stored history with (possibly overridden) thresholds, print a table.

The lead's CLI wires this in with::

    sub = subparsers.add_parser("backtest", help=...)
    add_backtest_arguments(sub)
    ...
    return run_backtest_command(args, settings.database_url)

History is read in one read-only transaction (``storage.history``), replayed by
:func:`detectors.backtest.replay`, and only findings detected inside ``--from``..``--to`` are
counted; the ``--warmup-days`` before ``--from`` (default 28) only teach the routine baseline.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg

from alerting.checkin_policy import CheckinConfig
from alerting.checkins import ANSWERS
from alerting.config import AlertingConfig
from carewatch.detector_runner import household_view_settings
from detectors.backtest import BacktestResult, CheckinModel, CheckinTally, replay
from detectors.config import DetectorSuiteConfig, HouseholdSettings
from i18n import N_, Messages, cli_language, messages
from storage import history


def _out(text: str) -> None:
    # This module is the CLI's output: a table for an operator, not a log line.
    sys.stdout.write(text + "\n")


def _cell(text: str, width: int) -> str:
    """``text`` padded to ``width`` display columns (a Chinese character takes two)."""
    shown = sum(2 if ord(char) > 0x2E80 else 1 for char in text)
    return text + " " * max(width - shown, 0)


def table(result: BacktestResult, say: Messages) -> str:
    """A plain-text table: one row per household and detector, then totals per detector."""

    def row(household: str, detector: str, kind: str, alerts: str) -> str:
        return " ".join((_cell(household, 20), _cell(detector, 24), _cell(kind, 16), alerts.rjust(6))).rstrip()

    head_detector = say.gettext(N_("detector"))
    alerts = say.gettext(N_("alerts"))
    lines = [row(say.gettext(N_("household")), head_detector, say.gettext(N_("kind")), alerts)]
    for (household, detector, kind), n in sorted(result.counts.items()):
        lines.append(row(household, detector, kind, str(n)))
    lines.append("")
    lines.append(row(say.gettext(N_("total")), head_detector, "", alerts))
    for detector, n in sorted(result.per_detector().items()):
        lines.append(row("", detector, "", str(n)))
    lines.append(
        say(
            N_("{records} records, {households} households, {alerts} alerts; {quiet} households without any"),
            records=result.records,
            households=len(result.households),
            alerts=sum(result.counts.values()),
            quiet=len(result.quiet_households()),
        )
    )
    return "\n".join(lines)


def _when(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def add_backtest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="start", type=_when, required=True, help="start (ISO 8601; UTC if no offset)")
    parser.add_argument("--to", dest="end", type=_when, default=None, help="end (ISO 8601); default: now")
    parser.add_argument(
        "--household", action="append", default=None, help="only this household (repeatable); default all"
    )
    parser.add_argument("--warmup-days", type=float, default=28.0, help="history replayed but not counted")
    group = parser.add_argument_group("threshold overrides")
    group.add_argument("--flat-litres", type=float, help="program rule: minimum litres (default 10)")
    group.add_argument("--flat-hours", type=float, help="program rule: window in hours (default 12)")
    group.add_argument("--flat-program", action="store_true", help="program rule exactly, never personalised")
    group.add_argument("--daily-min-litres", type=float, help="enable the 24 h daily-minimum rule at this many litres")
    group.add_argument("--no-routine", action="store_true", help="disable the personal routine detector")
    group.add_argument("--routine-margin-min", type=int, help="routine: minimum margin in minutes (default 60)")
    group.add_argument("--daily-max-litres", type=float, help="excessive use: absolute daily bound (default 2000)")
    group.add_argument("--flow-high-rate", type=float, help="running water: L/min (default 3.0)")
    group.add_argument("--grace-factor", type=float, help="offline after expected interval x this (default 2.0)")


def config_from_args(args: argparse.Namespace) -> DetectorSuiteConfig:
    """The default suite with the command line's overrides applied."""
    cfg = DetectorSuiteConfig()
    flat, daily = cfg.flat_rules
    if args.flat_litres is not None:
        flat = replace(flat, min_litres=args.flat_litres)
    if args.flat_hours is not None:
        flat = replace(flat, window_h=args.flat_hours)
    if args.daily_min_litres is not None:
        daily = replace(daily, enabled=True, min_litres=args.daily_min_litres)
    if args.flat_program:
        flat, daily = replace(flat, personal=False), replace(daily, personal=False)
    cfg = replace(cfg, flat_rules=(flat, daily))
    if args.no_routine:
        cfg = replace(cfg, routine=replace(cfg.routine, enabled=False))
    if args.routine_margin_min is not None:
        cfg = replace(cfg, routine=replace(cfg.routine, min_margin_min=args.routine_margin_min))
    if args.daily_max_litres is not None:
        cfg = replace(cfg, excess=replace(cfg.excess, daily_max_l=args.daily_max_litres))
    if args.flow_high_rate is not None:
        cfg = replace(cfg, flow=replace(cfg.flow, high_rate_lpm=args.flow_high_rate))
    if args.grace_factor is not None:
        cfg = replace(cfg, health=replace(cfg.health, grace_factor=args.grace_factor))
    return cfg


def run_backtest_command(args: argparse.Namespace, conninfo: str) -> int:
    """Load history, replay it, print the table. Returns the process exit code."""
    say = messages(cli_language())
    end = args.end or datetime.now(tz=UTC)  # the CLI, not the detectors, may read the clock
    if end <= args.start:
        _out(say(N_("backtest: --to must be after --from")))
        return 2
    load_from = args.start - timedelta(days=args.warmup_days)
    with psycopg.connect(conninfo) as conn:
        conn.read_only = True
        devices = history.load_devices(conn, args.household)
        raw_settings = history.load_household_settings(conn, args.household)
        records = history.load_records(conn, load_from, end, args.household)
        conn.rollback()
    settings = {}
    for household_id, (timezone, data) in raw_settings.items():
        try:
            settings[household_id] = household_view_settings(data, timezone, AlertingConfig())
        except (ValueError, KeyError) as exc:
            _out(
                say(
                    N_("backtest: household {household_id}: ignoring invalid settings ({error}); using defaults"),
                    household_id=household_id,
                    error=exc,
                )
            )
            settings[household_id] = HouseholdSettings(timezone=timezone)
    result = replay(records, devices, settings, config_from_args(args), count_from=args.start)
    _out(
        say(
            N_("backtest {start} .. {end} (warm-up from {warmup})"),
            start=args.start.isoformat(),
            end=end.isoformat(),
            warmup=load_from.isoformat(),
        )
    )
    _out(table(result, say))
    _out("")
    _out(checkin_table(result.checkins(checkin_model(), count_from=args.start)))
    return 0


def checkin_model() -> CheckinModel:
    """The fleet's default check-in policy as the backtest models it: the longest check-in's window."""
    config = CheckinConfig()
    kinds = frozenset(config.policies)
    window = max((policy.total for policy in config.policies.values()), default=timedelta(0))
    return CheckinModel(kinds=kinds, window=window, answers=ANSWERS)


def checkin_table(tally: dict[str, CheckinTally]) -> str:
    """Per household: check-ins, those a sign of life in the data answered, and pages otherwise."""
    lines = [
        "check-ins (the resident is asked first; answers by button or phone are not in the data):",
        f"{'household':<20} {'check-ins':>9} {'answered by use/press':>22} {'pages if unanswered':>20}"
        f" {'paged at once':>14}",
    ]
    for household, row in sorted(tally.items()):
        lines.append(
            f"{household:<20} {row.checkins:>9} {row.answered_by_presence:>22} {row.pages_if_unanswered:>20}"
            f" {row.paged_directly:>14}"
        )
    total = [sum(getattr(row, name) for row in tally.values()) for name in CheckinTally.__slots__]
    lines.append(f"{'total':<20} {total[0]:>9} {total[1]:>22} {total[2]:>20} {total[3]:>14}")
    return "\n".join(lines)
