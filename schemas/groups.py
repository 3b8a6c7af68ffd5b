"""Messaging-robot destinations (``/api/v1/notify-groups``): a WeCom or DingTalk robot in a group chat.

A group serves households of one district: it joins their escalation at ``tier`` (default 2, with the
committee staff) and is told who claimed. The webhook URL carries the robot's key and the DingTalk
secret signs requests: both are write-only (the API shows the URL's host and whether a secret is set).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from schemas.care import Identifier

Locale = Literal["zh-CN", "en"]


class RobotKind(StrEnum):
    WECOM = "wecom"  # 企业微信 / 政务微信 group robot
    DINGTALK = "dingtalk"  # DingTalk custom robot with 加签 signing


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_secret(kind: RobotKind, secret: str | None) -> None:
    if kind is RobotKind.DINGTALK and not secret:
        raise ValueError("a DingTalk robot needs its 加签 secret (SEC...): carewatch signs every message")
    if kind is RobotKind.WECOM and secret:
        raise ValueError("WeCom group robots have no secret: the key is part of the webhook URL")


class NotifyGroupCreate(_Body):
    group_id: Identifier | None = None
    kind: RobotKind
    # Operators: their own district (the default); admins must name one.
    district: str | None = Field(default=None, min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)
    webhook_url: HttpUrl
    secret: str | None = Field(default=None, min_length=8, max_length=200)
    tier: int = Field(default=2, ge=1, le=9)
    locale: Locale = "zh-CN"
    household_ids: list[Identifier] = Field(default_factory=list, max_length=5000)

    @model_validator(mode="after")
    def _secret_fits_kind(self) -> NotifyGroupCreate:
        _check_secret(self.kind, self.secret)
        return self


class NotifyGroupUpdate(_Body):
    """Change some fields; the kind and district of a group never change (make a new group instead)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    webhook_url: HttpUrl | None = None
    secret: str | None = Field(default=None, min_length=8, max_length=200)
    tier: int | None = Field(default=None, ge=1, le=9)
    locale: Locale | None = None


class NotifyGroupHouseholds(_Body):
    """Replace the households the group serves (all in the group's district)."""

    household_ids: list[Identifier] = Field(max_length=5000)


class NotifyGroupPublic(_Body):
    group_id: str
    kind: RobotKind
    district: str
    name: str
    # The webhook's host only: the rest of the URL is the robot's key.
    webhook_host: str
    has_secret: bool
    tier: int
    locale: str
    household_ids: list[str]
    created_at: datetime
    # The vendor said "too many messages": the robot is paused until then.
    paused_until: datetime | None


class CaregiverRobot(_Body):
    """The caregiver's own choice of robot, used when their care-plan channels list its kind (None: none)."""

    group_id: Identifier | None
