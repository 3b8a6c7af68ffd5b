"""Raw device data is kept only as long as configured (``storage.retention``, ``carewatch.retention``).

Plain PostgreSQL here (the suite's server): expired rows are deleted by ``carewatch db retention`` and by
the job ``carewatch run`` runs; newer rows, other tables and alerts stay. The TimescaleDB policies are
tested in ``test_timescaledb.py`` against a TimescaleDB server when one is given.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from pydantic import ValidationError

from carewatch import cli
from carewatch.retention import RetentionJob, enforce
from carewatch.settings import Settings
from storage.migrate import StorageMode
from storage.retention import RAW_TABLES, Retention

NOW = datetime.now(UTC).replace(microsecond=0)
RETENTION = Retention(raw=timedelta(days=40), rejects=timedelta(days=10))
DEVICES = [f"ret-meter-{n}" for n in range(3)]


def _seed(url: str, *, old: timedelta, new: timedelta) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO households (household_id, name) VALUES ('hh-ret', 'Retention') ON CONFLICT DO NOTHING"
        )
        for device_id in DEVICES:
            conn.execute(
                "INSERT INTO devices (device_id, device_type, household_id, expected_interval_s)"
                " VALUES (%s, 'water_meter', 'hh-ret', 900) ON CONFLICT DO NOTHING",
                (device_id,),
            )
            for seq, age in enumerate((old, new)):
                ts = NOW - age
                conn.execute(
                    "INSERT INTO readings VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", (device_id, ts, 10.0, ts)
                )
                conn.execute(
                    "INSERT INTO events (device_id, ts, seq, kind, note, received_at)"
                    " VALUES (%s, %s, %s, 'service_request', 'a note', %s) ON CONFLICT DO NOTHING",
                    (device_id, ts, seq, ts),
                )
                conn.execute(
                    "INSERT INTO status_reports (device_id, ts, seq, online, received_at)"
                    " VALUES (%s, %s, %s, true, %s) ON CONFLICT DO NOTHING",
                    (device_id, ts, seq, ts),
                )
                conn.execute(
                    "INSERT INTO message_receipts (device_id, seq, ts, channel, received_at)"
                    " VALUES (%s, %s, %s, 'telemetry', %s) ON CONFLICT DO NOTHING",
                    (device_id, seq, ts, ts),
                )
        for age in (timedelta(days=11), timedelta(days=9)):
            conn.execute(
                "INSERT INTO rejects (received_at, topic, device_id, reason, detail, payload, payload_size)"
                " VALUES (%s, 'care/v1/dev/x/event', 'x', 'invalid_json', 'bad', 'x', 1)",
                (NOW - age,),
            )


def _count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def _clear(url: str) -> None:
    with psycopg.connect(url) as conn:
        for table in (*RAW_TABLES, "rejects"):
            conn.execute(f"DELETE FROM {table}")


def test_enforce_deletes_expired_raw_rows_and_keeps_the_rest(database_url: str) -> None:
    _clear(database_url)
    _seed(database_url, old=timedelta(days=41), new=timedelta(days=39))
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO alerts (household_id, kind, severity, detector, evidence, started_at)"
            " VALUES ('hh-ret', 'sos', 'critical', 'test', 'long ago', %s)",
            (NOW - timedelta(days=500),),
        )

    report = enforce(database_url, RETENTION, NOW, drop_now=True)

    assert report.mode is StorageMode.POSTGRESQL
    assert report.rows_deleted == {**dict.fromkeys(RAW_TABLES, len(DEVICES)), "rejects": 1}
    for table in RAW_TABLES:
        assert _count(database_url, table) == len(DEVICES)  # the newer row of each device
    assert _count(database_url, "rejects") == 1
    assert _count(database_url, "alerts") == 1  # alerts are not raw data
    # A second pass finds nothing more.
    assert set(enforce(database_url, RETENTION, NOW, drop_now=True).rows_deleted.values()) == {0}


def test_carewatch_db_retention_uses_the_configured_days(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _clear(database_url)
    _seed(database_url, old=timedelta(days=100), new=timedelta(days=50))
    monkeypatch.setenv("CAREWATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("CAREWATCH_RETENTION_RAW_DAYS", "60")

    assert cli.main(["db", "retention"]) == 0

    out = capsys.readouterr().out
    assert "storage mode: postgresql" in out
    assert f"rows deleted from readings: {len(DEVICES)}" in out
    assert _count(database_url, "readings") == len(DEVICES)


def test_the_settings_refuse_a_retention_shorter_than_the_detectors_need() -> None:
    with pytest.raises(ValidationError, match="retention_raw_days"):
        Settings(retention_raw_days=7)


def test_the_job_carewatch_run_starts_enforces_retention(database_url: str) -> None:
    _clear(database_url)
    _seed(database_url, old=timedelta(days=41), new=timedelta(days=1))
    job = RetentionJob(conninfo=database_url, retention=RETENTION, every_s=3600, first_after_s=0.05)
    job.start()
    try:
        deadline = time.monotonic() + 20
        while job.passes == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        job.stop()
    assert job.passes == 1
    assert _count(database_url, "readings") == len(DEVICES)
