"""The simulated month (``tests.report.month``), built once for every report test, in its own database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.fix_db import cloned_database
from tests.report.month import World, build


@pytest.fixture(scope="package")
def month_world(pg_admin_url: str, template_database: str) -> Iterator[World]:
    with cloned_database(pg_admin_url, template_database) as url:
        yield build(url)
