"""``carewatch backtest`` end to end against a real, migrated PostgreSQL: history in, counts out."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from carewatch.backtest_cli import add_backtest_arguments, run_backtest_command
from storage import history
from tests.detectors.helpers import at


@pytest.fixture(scope="module")
def filled(database_url: str) -> str:
    """Two households: hA's meter goes quiet for 13 h on day 1; hB is away that day and presses sos."""
    away = {"away": [{"start": at(0, day=1).isoformat(), "end": at(0, day=2).isoformat(), "reason": "hospital"}]}
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO households (household_id, name, settings) VALUES ('hA', 'A', '{}'), ('hB', 'B', %s)",
            [Jsonb(away)],
        )
        conn.execute(
            "INSERT INTO devices (device_id, device_type, household_id, expected_interval_s) VALUES"
            " ('mA', 'water_meter', 'hA', 900), ('mB', 'water_meter', 'hB', 900), ('cB', 'call_button', 'hB', 3600)"
        )
        rows = []
        for device in ("mA", "mB"):
            register = 100.0
            ts = at(0)
            while ts < at(0, day=2):
                # Water every hour, except on day 1 between 06:00 and 19:00 (13 h quiet).
                quiet = at(6, day=1) <= ts < at(19, day=1)
                if ts.minute == 0 and not quiet:
                    register += 5.0
                rows.append((device, ts, register, ts))
                ts += timedelta(minutes=15)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO readings (device_id, ts, register_l, received_at) VALUES (%s, %s, %s, %s)", rows
            )
        conn.execute(
            "INSERT INTO events (device_id, ts, seq, kind, received_at) VALUES ('cB', %s, 1, 'sos', %s)",
            [at(9, day=1), at(9, day=1)],
        )
        conn.execute(
            "INSERT INTO status_reports (device_id, ts, seq, online, received_at) VALUES ('cB', %s, 1, true, %s)",
            [at(8, day=1), at(8, day=1)],
        )
    return database_url


def args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_backtest_arguments(parser)
    return parser.parse_args(list(argv))


def rows(out: str) -> dict[tuple[str, str, str], int]:
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0].startswith("h") and parts[3].isdigit():
            found[(parts[0], parts[1], parts[2])] = int(parts[3])
    return found


def test_history_loads_records_by_device_time(filled: str) -> None:
    with psycopg.connect(filled) as conn:
        conn.read_only = True
        records = history.load_records(conn, at(8, day=1), at(9, day=1) + timedelta(seconds=1), ["hB"])
        devices = history.load_devices(conn, ["hB"])
        settings = history.load_household_settings(conn)
    assert [d.device_id for d in devices] == ["cB", "mB"]
    assert [type(r).__name__ for r in records[:2]] == ["MeterSample", "StatusReport"]  # same ts: readings first
    assert records[-1].device_id == "cB"
    assert records[-1].ts == at(9, day=1)
    assert len(records) == 4 + 1 + 1 + 1  # 08:00..09:00 readings, the status report, the sos
    assert settings["hB"][1]["away"][0]["reason"] == "hospital"
    assert settings["hA"] == ("Asia/Shanghai", {})


def test_backtest_counts_per_household_and_detector(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    start, end = at(0, day=1).isoformat(), at(0, day=2).isoformat()
    assert run_backtest_command(args("--from", start, "--to", end, "--warmup-days", "1"), filled) == 0
    out = capsys.readouterr().out
    # hA: the 13 h quiet fires the backstop once (12 h after 05:45); hB's identical quiet is inside its
    # hospital stay (suppressed), but its sos is never suppressed. The call button reports hourly, so
    # it is offline two hours after its last message; ticking stops at the last record.
    assert rows(out) == {
        ("hA", "backstop:flat_12h", "inactivity"): 1,
        ("hB", "call_sos", "sos"): 1,
        ("hB", "health_offline", "device_offline"): 1,
    }
    assert "2 households" in out
    # With check-ins on: hA's inactivity would ask the resident first; water came back at 19:00, long
    # after the check-in (the backstop fired at 17:45), so it pages unless she answers; hB's sos pages
    # at once, and so does its offline button (not a check-in kind).
    table = out.split("check-ins (")[1].splitlines()
    assert [line.split() for line in table[2:]] == [
        ["hA", "1", "0", "1", "0"],
        ["hB", "0", "0", "0", "2"],
        ["total", "1", "0", "1", "2"],
    ]


def test_backtest_overrides_and_household_filter(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    start, end = at(0, day=1).isoformat(), at(0, day=2).isoformat()
    argv = (
        "--from",
        start,
        "--to",
        end,
        "--warmup-days",
        "1",
        "--household",
        "hA",
        "--flat-program",
        "--flat-hours",
        "16",
    )
    assert run_backtest_command(args(*argv), filled) == 0
    # The program rule over 16 h: less than 10 L only from 04:00 (5 L at 05:00) to 19:00, never 16 h.
    assert rows(capsys.readouterr().out) == {}
    assert run_backtest_command(args("--from", start, "--to", end, "--household", "hA", "--flat-program"), filled) == 0
    assert rows(capsys.readouterr().out) == {("hA", "flat_rule:flat_12h", "inactivity"): 1}


def test_backtest_rejects_an_empty_range(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    when = datetime.fromisoformat(at(0, day=1).isoformat())
    assert run_backtest_command(args("--from", when.isoformat(), "--to", when.isoformat()), filled) == 2
    assert "--to must be after --from" in capsys.readouterr().out
