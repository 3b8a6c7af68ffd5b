"""Robot and template-SMS wording (pure): both languages, byte and character limits, ids and links kept."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from alerting.render import (
    ELLIPSIS,
    SMS_TEMPLATE_VARIABLES,
    robot_markdown,
    robot_text,
    sms_family,
    sms_template_params,
    truncate_utf8,
)

BODY: dict[str, Any] = {
    "reason": "new",
    "alert_id": 4242,
    "household_id": "hh-putuo-7",
    "kind": "sos",
    "severity": "critical",
    "evidence": "一键通紧急按钮 10:02 按下",
    "claimed_by": None,
}
LINK = "https://carewatch.example.gov.cn/#/household/hh-putuo-7"


@given(st.text(alphabet=st.sampled_from("水表一键通烟感a1 😀é"), max_size=300), st.integers(min_value=0, max_value=400))
def test_truncate_utf8_never_splits_a_character(text: str, limit: int) -> None:
    cut = truncate_utf8(text, limit)
    assert len(cut.encode()) <= max(limit, 0) or cut == text
    assert cut == text or cut.endswith(ELLIPSIS) or limit < len(ELLIPSIS.encode())
    assert text.startswith(cut.removesuffix(ELLIPSIS))  # a prefix of whole characters, nothing garbled


def test_markdown_in_chinese_by_default_with_id_and_link() -> None:
    text = robot_markdown(BODY, max_bytes=4096, link=LINK)
    assert "【紧急】一键呼叫" in text
    assert "一键通紧急按钮 10:02 按下" in text
    assert "新警报，请尽快处理并认领" in text
    assert "警报编号 4242" in text
    assert f"[在 carewatch 中查看]({LINK})" in text


def test_markdown_in_english_when_asked() -> None:
    text = robot_markdown({**BODY, "reason": "claimed_by_other", "claimed_by": "cg-li"}, max_bytes=4096, locale="en")
    assert "[CRITICAL] emergency call" in text
    assert "claimed by cg-li; nobody else needs to act" in text
    assert "Alert 4242" in text


def test_long_evidence_is_cut_to_the_byte_limit_keeping_the_footer() -> None:
    body = {**BODY, "evidence": "用水" * 5000}
    for limit in (4096, 2048, 600):
        for text in (robot_markdown(body, max_bytes=limit, link=LINK), robot_text(body, max_bytes=limit, link=LINK)):
            assert len(text.encode()) <= limit
            assert "4242" in text
            assert LINK in text
            assert f"{ELLIPSIS}" in text
            text.encode().decode("utf-8")  # valid UTF-8 throughout


def test_mention_and_claimed_status_in_plain_text() -> None:
    text = robot_text({**BODY, "reason": "escalated"}, max_bytes=2048, mention="@13800000000")
    assert "无人认领，已升级" in text
    assert "请 @13800000000 处理" in text


def test_sms_families_and_variables() -> None:
    assert sms_family(BODY) == "alert"
    assert sms_family({**BODY, "severity": "normal", "kind": "device_offline"}) == "notice"
    assert sms_family({**BODY, "reason": "claimed_by_other"}) == "claimed"
    params = sms_template_params(BODY)
    assert list(params) == list(SMS_TEMPLATE_VARIABLES["alert"])
    assert params == {
        "kind": "一键呼叫",
        "household": "hh-putuo-7",
        "evidence": "一键通紧急按钮 10:02 按下",
        "alert": "4242",
    }
    claimed = sms_template_params({**BODY, "reason": "claimed_by_other", "claimed_by": "cg-li"}, locale="en")
    assert claimed == {"household": "hh-putuo-7", "kind": "emergency call", "alert": "4242", "claimer": "cg-li"}


def test_sms_variables_are_cut_to_the_vendor_limit_in_characters() -> None:
    params = sms_template_params({**BODY, "evidence": "夜间\n持续用水" * 20}, max_chars=12)
    assert all(len(value) <= 12 for value in params.values())
    assert params["evidence"] == "夜间 持续用水夜间 持" + ELLIPSIS
    assert len(params["evidence"]) == 12
