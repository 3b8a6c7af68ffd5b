"""Messaging-robot destinations (migration 0014): groups, the households they serve, caregivers' own
robots, and the robots' rate limit shared by every dispatcher. Functions take a connection and never
commit (the caller owns the transaction).

The rate limit (``admit_robot_send``) is a sliding window kept in ``robot_sends`` and measured on the
database clock: every dispatcher thread and process, on any host, sees the same window, so together
they never send a robot more than its limit. Sends to one robot are serialised by a transaction-scoped
advisory lock, held by the dispatcher until its send is recorded and committed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.rows import dict_row

from schemas.groups import NotifyGroupCreate, NotifyGroupUpdate

_ADVISORY_NAMESPACE = 0x726F626F  # "robo": keeps these locks apart from other advisory locks


@dataclass(frozen=True, slots=True)
class GroupTarget:
    """A group to notify about a household's alert (what ``alerting.service`` enqueues for)."""

    group_id: str
    kind: str
    timezone: str


def insert_group(conn: psycopg.Connection, body: NotifyGroupCreate, group_id: str, district: str) -> None:
    conn.execute(
        "INSERT INTO notify_groups (group_id, kind, district, name, webhook_url, secret, tier, locale)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            group_id,
            body.kind.value,
            district,
            body.name,
            str(body.webhook_url),
            body.secret,
            body.tier,
            body.locale,
        ),
    )


def update_group(conn: psycopg.Connection, group_id: str, body: NotifyGroupUpdate) -> None:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if "webhook_url" in changes:
        changes["webhook_url"] = str(changes["webhook_url"])
    if not changes:
        return
    # Column names come from the model's fixed field names, never from the request.
    assignments = ", ".join(f"{column} = %s" for column in changes)
    conn.execute(f"UPDATE notify_groups SET {assignments} WHERE group_id = %s", [*changes.values(), group_id])


def delete_group(conn: psycopg.Connection, group_id: str) -> bool:
    return conn.execute("DELETE FROM notify_groups WHERE group_id = %s", (group_id,)).rowcount > 0


def replace_households(conn: psycopg.Connection, group_id: str, household_ids: Iterable[str]) -> None:
    conn.execute("DELETE FROM notify_group_households WHERE group_id = %s", (group_id,))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO notify_group_households (group_id, household_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            [(group_id, household_id) for household_id in household_ids],
        )


def households_outside(conn: psycopg.Connection, household_ids: list[str], district: str) -> list[str]:
    """The ids that are not households of ``district`` (unknown, or another district's)."""
    rows = conn.execute(
        "SELECT household_id FROM households WHERE household_id = ANY(%s) AND district = %s",
        (household_ids, district),
    ).fetchall()
    found = {row[0] for row in rows}
    return [household_id for household_id in household_ids if household_id not in found]


_PUBLIC = (
    "g.group_id, g.kind, g.district, g.name, g.webhook_url, g.secret IS NOT NULL AS has_secret, g.tier, g.locale,"
    " g.created_at, g.paused_until, coalesce(array_agg(h.household_id ORDER BY h.household_id)"
    " FILTER (WHERE h.household_id IS NOT NULL), '{}') AS household_ids"
)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    row["webhook_host"] = urlsplit(row.pop("webhook_url")).hostname or ""
    return row


def get_group(conn: psycopg.Connection, group_id: str, district: str | None = None) -> dict[str, Any] | None:
    """The group as the API shows it (no URL path or secret); None if absent or outside ``district``."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_PUBLIC} FROM notify_groups g LEFT JOIN notify_group_households h USING (group_id)"
            " WHERE g.group_id = %s AND (%s::text IS NULL OR g.district = %s) GROUP BY g.group_id",
            (group_id, district, district),
        ).fetchone()
    return _public(row) if row else None


def list_groups(
    conn: psycopg.Connection, *, district: str | None, after: str | None, limit: int
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_PUBLIC} FROM notify_groups g LEFT JOIN notify_group_households h USING (group_id)"
            " WHERE (%(district)s::text IS NULL OR g.district = %(district)s)"
            " AND (%(after)s::text IS NULL OR g.group_id > %(after)s)"
            " GROUP BY g.group_id ORDER BY g.group_id LIMIT %(limit)s",
            {"district": district, "after": after, "limit": limit},
        ).fetchall()
    return [_public(row) for row in rows]


def group_kind(conn: psycopg.Connection, group_id: str, district: str | None = None) -> str | None:
    row = conn.execute(
        "SELECT kind FROM notify_groups WHERE group_id = %s AND (%s::text IS NULL OR district = %s)",
        (group_id, district, district),
    ).fetchone()
    return str(row[0]) if row else None


def set_caregiver_robot(conn: psycopg.Connection, caregiver_id: str, group_id: str | None) -> bool:
    """Choose (or clear) a caregiver's robot; False if there is no such caregiver."""
    cursor = conn.execute("UPDATE caregivers SET robot_group_id = %s WHERE caregiver_id = %s", (group_id, caregiver_id))
    return cursor.rowcount > 0


def groups_for(conn: psycopg.Connection, household_id: str, tiers: Iterable[int]) -> list[GroupTarget]:
    """The groups serving the household whose tier is among ``tiers`` (an escalation step's)."""
    rows = conn.execute(
        "SELECT g.group_id, g.kind, h.timezone FROM notify_group_households gh"
        " JOIN notify_groups g USING (group_id) JOIN households h ON h.household_id = gh.household_id"
        " WHERE gh.household_id = %s AND g.tier = ANY(%s) ORDER BY g.group_id",
        (household_id, list(tiers)),
    ).fetchall()
    return [GroupTarget(group_id=row[0], kind=row[1], timezone=row[2]) for row in rows]


def notified_groups(conn: psycopg.Connection, alert_id: int) -> list[tuple[str, str]]:
    """(group, robot kind) of every robot that carried the alert (not claim notices): where the claim
    notice goes, once per group whether the group was notified as a team or for one of its members."""
    rows = conn.execute(
        "SELECT DISTINCT n.group_id, g.kind FROM notifications n JOIN notify_groups g USING (group_id)"
        " WHERE n.alert_id = %s AND n.reason <> 'claimed_by_other' ORDER BY 1",
        (alert_id,),
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


def admit_robot_send(conn: psycopg.Connection, group_id: str, *, limit: int, window_s: float) -> float:
    """Take a place in the robot's window: 0.0 if the send may go now (recorded), else seconds to wait.

    Must run inside the transaction that sends and records the delivery: the advisory lock taken here
    serialises sends to this robot until that transaction ends, so the count cannot be overtaken.
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_ADVISORY_NAMESPACE, group_id))
    row = conn.execute(
        "SELECT greatest(0, extract(epoch FROM paused_until - clock_timestamp()))::float8 FROM notify_groups"
        " WHERE group_id = %s",
        (group_id,),
    ).fetchone()
    paused_s = float(row[0]) if row and row[0] is not None else 0.0
    if paused_s > 0:
        return paused_s
    conn.execute(
        "DELETE FROM robot_sends WHERE group_id = %s AND at < clock_timestamp() - make_interval(secs => %s)",
        (group_id, window_s),
    )
    sends = conn.execute(
        "SELECT at FROM robot_sends WHERE group_id = %s ORDER BY at DESC OFFSET %s LIMIT 1",
        (group_id, limit - 1),
    ).fetchone()
    if sends is not None:
        # ``limit`` sends inside the window already: wait until the oldest of them leaves it.
        wait = conn.execute(
            "SELECT extract(epoch FROM %s::timestamptz + make_interval(secs => %s) - clock_timestamp())::float8",
            (sends[0], window_s),
        ).fetchone()
        return max(0.001, float(wait[0]) if wait else window_s)
    conn.execute("INSERT INTO robot_sends (group_id, at) VALUES (%s, clock_timestamp())", (group_id,))
    return 0.0


def pause_robot(conn: psycopg.Connection, group_id: str, seconds: float) -> None:
    """The vendor throttled the robot: hold every send to it (all dispatchers) for ``seconds``."""
    conn.execute(
        "UPDATE notify_groups SET paused_until = greatest(coalesce(paused_until, clock_timestamp()),"
        " clock_timestamp() + make_interval(secs => %s)) WHERE group_id = %s",
        (seconds, group_id),
    )
