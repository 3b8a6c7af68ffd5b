"""A new operator's first ``carewatch db migrate`` creates the database the URL names (README)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg
import pytest

from tests.fixtures.fix_db import database_url_for, drop_database

pytestmark = pytest.mark.services


def test_db_migrate_creates_a_missing_database_then_migrates_it(pg_admin_url: str) -> None:
    name = f"cw_{os.getpid()}_{uuid.uuid4().hex[:8]}"  # the suite's naming: dropped if left behind
    url = database_url_for(pg_admin_url, name)
    env = {**os.environ, "CAREWATCH_DATABASE_URL": url}
    try:
        for _ in range(2):  # and again on the existing one: nothing to create, nothing to apply
            done = subprocess.run(
                [sys.executable, "-m", "carewatch.cli", "db", "migrate"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            assert "migrated; storage mode:" in done.stdout
        with psycopg.connect(url) as conn:
            versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions[0] == 1
        assert len(versions) == len(set(versions)) >= 7
    finally:
        drop_database(pg_admin_url, name)
