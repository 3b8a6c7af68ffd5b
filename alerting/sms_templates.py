"""Template SMS, the model of the Chinese cloud SMS vendors: no free text, only an approved template
(its code) and the values of its variables.

carewatch sends three families of message (``alerting.render.sms_family``), each its own template:
``alert`` (critical and high: act now), ``notice`` (normal and low: the care team's queue) and
``claimed`` (someone took the alert; you need not act). ``templates`` maps a family to the vendor's
template code; ``"<family>.en"`` names an English template for caregivers reading English (optional:
without it the Chinese template is used). The variables and their order are
``alerting.render.SMS_TEMPLATE_VARIABLES``; their values come from ``alerting.render.sms_template_params``,
each cut to the vendor's per-variable limit (``max_chars``).

``TemplateSmsChannel`` does what both vendors share; ``alerting.sms_aliyun`` and ``alerting.sms_tencent``
sign and send. Like the gateway channel they are the ``sms`` channel (``sms_provider`` picks one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from alerting.channels import Delivery, DeliveryResult
from alerting.render import SMS_TEMPLATE_VARIABLES, sms_family, sms_template_params

FAMILIES = tuple(SMS_TEMPLATE_VARIABLES)


class TemplateConfigError(ValueError):
    """A template SMS vendor is configured without a template for every family."""


@dataclass(frozen=True, slots=True)
class TemplateMessage:
    """What a vendor request carries: the template code and its variables, in template order."""

    family: str
    template_code: str
    params: dict[str, str]


@dataclass(frozen=True, slots=True)
class Verdict:
    """How to treat a vendor's answer code: retry later (``retry_after_s``), give up, or retry."""

    permanent: bool = False
    retry_after_s: float | None = None


def check_templates(templates: Mapping[str, str]) -> None:
    missing = [family for family in FAMILIES if not templates.get(family)]
    if missing:
        raise TemplateConfigError(f"sms_templates needs a template code for: {', '.join(missing)}")


class TemplateSmsChannel:
    """The vendor-independent half: choose the template, fill its variables, classify answers."""

    name = "sms"
    vendor = ""

    def __init__(
        self,
        *,
        sign_name: str,
        templates: Mapping[str, str],
        max_chars: int,
        timeout_s: float = 5.0,
        client: httpx.Client | None = None,
    ) -> None:
        check_templates(templates)
        self._sign_name = sign_name
        self._templates = dict(templates)
        self._max_chars = max_chars
        self._client = client or httpx.Client(timeout=timeout_s)

    def message(self, delivery: Delivery) -> TemplateMessage:
        family = sms_family(delivery.body)
        language = "en" if delivery.locale.lower().startswith("en") else ""
        code = self._templates.get(f"{family}.{language}") if language else None
        params = sms_template_params(
            delivery.body, locale=delivery.locale if code else "zh-CN", max_chars=self._max_chars
        )
        return TemplateMessage(family=family, template_code=code or self._templates[family], params=params)

    def send(self, delivery: Delivery) -> DeliveryResult:
        if not delivery.phone:
            return DeliveryResult(False, "caregiver has no phone number", permanent=True)
        message = self.message(delivery)
        try:
            return self.request(delivery, message)
        except httpx.HTTPError as exc:
            return DeliveryResult(False, f"{self.vendor} {type(exc).__name__}: {exc}"[:300])

    def request(self, delivery: Delivery, message: TemplateMessage) -> DeliveryResult:
        raise NotImplementedError

    def result(self, code: str, message: str, verdicts: Mapping[str, Verdict]) -> DeliveryResult:
        """A failed answer as a ``DeliveryResult``: known codes by ``verdicts``, unknown ones retried."""
        verdict = verdicts.get(code, Verdict())
        detail = f"{self.vendor} {code}: {message}"[:300]
        return DeliveryResult(False, detail, permanent=verdict.permanent, retry_after_s=verdict.retry_after_s)

    def close(self) -> None:
        self._client.close()
