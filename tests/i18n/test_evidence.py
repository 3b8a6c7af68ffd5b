"""The one renderer of evidence: every kind has a template naming exactly its fields, renders in both
languages, and shows times in the household's zone; language negotiation and defaults."""

from __future__ import annotations

import typing
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any

import pytest
from pydantic import BaseModel

from i18n import Language, default_language, english, messages, negotiate, recipient_language, render_evidence
from i18n.catalog import cli_language
from i18n.evidence import ENUM_TEXT, TEMPLATES, placeholders
from schemas import evidence as ev
from schemas.kinds import DeviceType

AS_OF = datetime(2024, 3, 4, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai


def _messages() -> list[type[ev.EvidenceMessage]]:
    found, todo = [], list(ev.EvidenceMessage.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def _kind(cls: type[ev.EvidenceMessage]) -> str:
    return str(cls.model_fields["kind"].default)


def test_every_message_has_a_template_naming_exactly_its_fields() -> None:
    kinds = {_kind(cls): cls for cls in _messages()}
    assert set(kinds) == set(TEMPLATES)
    for kind, cls in kinds.items():
        fields = set(cls.model_fields) - {"kind"}
        assert {name for name, _ in placeholders(TEMPLATES[kind])} == fields, kind


def test_every_enum_value_in_evidence_has_its_words() -> None:
    for cls in _messages():
        for field in cls.model_fields.values():
            for arg in (field.annotation, *typing.get_args(field.annotation)):
                if isinstance(arg, type) and issubclass(arg, StrEnum):
                    assert {(arg, value.value) for value in arg} <= set(ENUM_TEXT), arg


_SCALARS: dict[Any, Any] = {
    datetime: AS_OF - timedelta(hours=13),
    time: time(1, 0),
    DeviceType: DeviceType.WATER_METER,
    str: "x-1",
    int: 19,
}


def _scalar(annotation: Any) -> Any:
    """A plausible value of a plain field's type."""
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        return next(iter(annotation))
    return 1234.5


def _sample(cls: type[BaseModel]) -> Any:
    """An instance of ``cls`` with a plausible value for every field (sub-messages included)."""
    values: dict[str, Any] = {}
    for name, field in cls.model_fields.items():
        if name == "kind":
            continue
        annotation = field.annotation
        if typing.get_origin(annotation) is typing.Annotated:  # a message of any kind (a union)
            annotation = typing.get_args(annotation)[0]
        if typing.get_origin(annotation) is list:
            item = typing.get_args(annotation)[0]
            values[name] = [next(iter(item)) if issubclass(item, StrEnum) else _sample(item)] * 2
            continue
        options = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
        first = options[0]
        if typing.get_origin(first) is typing.Annotated:  # a discriminated union of sub-messages
            first = typing.get_args(typing.get_args(first)[0])[0]
        values[name] = _sample(first) if isinstance(first, type) and issubclass(first, BaseModel) else _scalar(first)
    return cls(**values)


@pytest.mark.parametrize("cls", typing.get_args(typing.get_args(ev.Message)[0]), ids=_kind)
def test_every_kind_renders_in_both_languages(cls: type[ev.EvidenceMessage]) -> None:
    evidence = ev.Evidence(message=_sample(cls), tz="Asia/Shanghai", as_of=AS_OF)
    text_en, text_zh = english(evidence), render_evidence(evidence, Language.ZH_CN)
    assert "{" not in text_en
    assert "{" not in text_zh
    if cls is not ev.PlainText:
        assert any("\u4e00" <= char <= "\u9fff" for char in text_zh), text_zh
        assert not any("\u4e00" <= char <= "\u9fff" for char in text_en), text_en
    # Evidence is data: it survives JSON (the alert's jsonb) and renders the same afterwards.
    again = ev.Evidence.model_validate_json(evidence.model_dump_json())
    assert render_evidence(again, Language.ZH_CN) == text_zh


def test_times_are_local_to_the_household_and_relative_to_as_of() -> None:
    message = ev.NoWater(
        window_h=12, since=AS_OF - timedelta(hours=12.25), litres=5.5, quiet_s=12 * 3600, reading_at=AS_OF
    )
    shanghai = ev.Evidence(message=message, tz="Asia/Shanghai", as_of=AS_OF)
    assert english(shanghai) == (
        "no water used for 12 h: none since 20:45 yesterday (5.5 L in drips over 12 h, reading at 09:00)"
    )
    assert render_evidence(shanghai, Language.ZH_CN) == (
        "已 12 小时未用水：自 昨天 20:45 起没有用水（12 小时内仅有滴漏 5.5 升，读数时间 09:00）"
    )
    london = ev.Evidence(message=message, tz="Europe/London", as_of=AS_OF)
    assert english(london) == (
        "no water used for 12 h: none since 12:45 yesterday (5.5 L in drips over 12 h, reading at 01:00)"
    )
    older = message.model_copy(update={"since": AS_OF - timedelta(days=3)})
    assert "since Mar 1 09:00" in english(shanghai.model_copy(update={"message": older}))
    assert "自 3月1日 09:00 起" in render_evidence(shanghai.model_copy(update={"message": older}), Language.ZH_CN)


def test_numbers_and_lists_are_formatted_for_the_locale() -> None:
    excess = ev.ExcessOverLimit(litres=2400.4, at=AS_OF, limit_l=2000)
    evidence = ev.Evidence(message=excess, tz="Asia/Shanghai", as_of=AS_OF)
    assert english(evidence).startswith("2,400 L used today by 09:00: above the program's daily maximum of 2,000 L")
    peers = [
        ev.SilentPeer(device=ev.DeviceRef(device_type=DeviceType.SMOKE_ALARM, device_id=f"s{i}"), last_heard=AS_OF)
        for i in (1, 2)
    ]
    offline = ev.DeviceOffline(
        device=ev.DeviceRef(device_type=DeviceType.WATER_METER, device_id="m1"),
        why=ev.OfflineLastWill(),
        also_silent=ev.AlsoSilent(devices=peers),
    )
    zh = render_evidence(ev.Evidence(message=offline, tz="Asia/Shanghai", as_of=AS_OF), Language.ZH_CN)
    assert "烟感报警器 s1（最后消息 09:00）和烟感报警器 s2（最后消息 09:00）" in zh
    assert zh.startswith("智能水表 m1 已报告离线（遗嘱消息）；")


def test_the_english_text_is_the_message_id_so_a_gap_shows_english() -> None:
    say = messages(Language.ZH_CN)
    assert say.gettext("a message nobody has translated yet") == "a message nobody has translated yet"
    assert say("alert {alert_id} does not exist", alert_id=7) == "告警 7 不存在"
    assert messages(Language.EN)("alert {alert_id} does not exist", alert_id=7) == "alert 7 does not exist"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, Language.EN),
        ("", Language.EN),
        ("zh-CN,zh;q=0.9,en;q=0.8", Language.ZH_CN),
        ("en-GB,en;q=0.9", Language.EN),
        ("fr-FR, zh-TW;q=0.5", Language.ZH_CN),
        ("en;q=0.2, zh-Hans;q=0.9", Language.ZH_CN),
        ("zh;q=0, de", Language.EN),
        ("*", Language.EN),
        ("de;q=abc", Language.EN),
    ],
)
def test_accept_language_negotiation(header: str | None, expected: Language) -> None:
    assert negotiate(header) is expected


def test_a_caregivers_language_defaults_from_the_households_zone() -> None:
    assert default_language("Asia/Shanghai") is Language.ZH_CN
    assert default_language("Australia/Perth") is Language.EN
    assert recipient_language(None, "Asia/Shanghai") is Language.ZH_CN
    assert recipient_language("en", "Asia/Shanghai") is Language.EN
    assert recipient_language("zh-CN", "Europe/London") is Language.ZH_CN
    assert recipient_language("xx", "Europe/London") is Language.EN


def test_the_command_line_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert cli_language() is Language.ZH_CN
    monkeypatch.setenv("LANGUAGE", "en_US")
    assert cli_language() is Language.EN
    monkeypatch.delenv("LANGUAGE")
    monkeypatch.setenv("LANG", "C.UTF-8")
    assert cli_language() is Language.EN
