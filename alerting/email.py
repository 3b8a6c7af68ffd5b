"""E-mail over SMTP: one connection per delivery (simple, thread-safe; alert mail is rare).

``Message-ID`` is derived from the idempotency key, so a retry after a crash carries the same id and
mail clients and archives can fold the repeat. A refused recipient is permanent (dead at once); every
other SMTP or network problem is retried by the dispatcher.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from alerting.channels import Delivery, DeliveryResult
from alerting.render import email_subject, email_text
from alerting.signing import IDEMPOTENCY_HEADER


class EmailChannel:
    name = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int = 25,
        sender: str = "carewatch@localhost",
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout_s: float = 10.0,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._username = username
        self._password = password
        self._starttls = starttls
        self._timeout_s = timeout_s

    def message(self, delivery: Delivery) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self._sender
        msg["To"] = delivery.email
        msg["Subject"] = email_subject(delivery.body)
        domain = self._sender.rpartition("@")[2] or "carewatch"
        msg["Message-ID"] = f"<{delivery.idempotency_key}@{domain}>"
        msg[IDEMPOTENCY_HEADER] = delivery.idempotency_key
        msg.set_content(email_text(delivery.body))
        return msg

    def send(self, delivery: Delivery) -> DeliveryResult:
        if not delivery.email:
            return DeliveryResult(False, "caregiver has no e-mail address", permanent=True)
        msg = self.message(delivery)
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout_s) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._username and self._password:
                    smtp.login(self._username, self._password)
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            return DeliveryResult(False, f"recipient refused: {exc.recipients}"[:300], permanent=True)
        except (smtplib.SMTPException, OSError) as exc:
            return DeliveryResult(False, f"{type(exc).__name__}: {exc}"[:300])
        return DeliveryResult(True, f"SMTP accepted by {self._host}:{self._port}")
