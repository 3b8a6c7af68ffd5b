"""Where and how to reach an MQTT broker: one URL form shared by every carewatch MQTT client.

``mqtt://[user:pass@]host[:port]`` or ``mqtts://...`` (TLS; default ports 1883 and 8883), with optional
query parameters:

- ``protocol=5`` (default) or ``protocol=3.1.1`` (brokers without MQTT 5, e.g. the amqtt fallback);
- ``ca_file=PATH``: the CA certificate(s) to trust (default: the system's trust store); the server's
  certificate and host name are always verified;
- ``cert_file=PATH`` and ``key_file=PATH``: a client certificate, for brokers that ask for one.

User name and password are percent-decoded. The composition root builds each service's URL from
settings (``carewatch.broker.endpoints``), so the ingest, the dispatcher, the caregiver-app listener
and the simulator read their login and TLS files the same way. ``redacted`` is what may be logged.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, replace
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

_SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True, "tls": True}
_FILES = ("ca_file", "cert_file", "key_file")


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    """A broker address with the client's login and TLS files (see the module docstring)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    # "5" (session expiry, receive maximum, shared subscriptions) or "3.1.1".
    protocol: str = "5"

    @classmethod
    def parse(cls, url: str) -> MqttEndpoint:
        """Parse ``url``; a bare ``host:port`` means ``mqtt://host:port``. Raises ``ValueError``."""
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in _SCHEMES:
            raise ValueError(f"unsupported MQTT URL scheme {parts.scheme!r} (use mqtt:// or mqtts://)")
        tls = _SCHEMES[parts.scheme]
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        protocol = query.pop("protocol", "5")
        if protocol not in {"5", "3.1.1"}:
            raise ValueError(f"unsupported MQTT protocol {protocol!r}: use 5 or 3.1.1")
        files = {name: query.pop(name, None) or None for name in _FILES}
        if query:
            raise ValueError(f"unknown MQTT URL parameter(s): {', '.join(sorted(query))}")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            protocol=protocol,
            **files,
        )

    def with_login(self, username: str | None, password: str | None) -> MqttEndpoint:
        return replace(self, username=username, password=password)

    def with_tls_files(self, *, ca_file: str | None, cert_file: str | None, key_file: str | None) -> MqttEndpoint:
        """The same endpoint with these TLS files (those given replace the URL's own)."""
        return replace(
            self,
            ca_file=ca_file or self.ca_file,
            cert_file=cert_file or self.cert_file,
            key_file=key_file or self.key_file,
        )

    def url(self) -> str:
        """The URL form again, login included: pass it to a child process, never log it (``redacted``)."""
        return self._format(redact=False)

    def redacted(self) -> str:
        """The URL without the password: safe for logs and messages."""
        return self._format(redact=True)

    def _format(self, *, redact: bool) -> str:
        login = ""
        if self.username is not None:
            login = quote(self.username, safe="")
            if self.password is not None:
                login += ":" + ("***" if redact else quote(self.password, safe=""))
            login += "@"
        params = {name: getattr(self, name) for name in _FILES if getattr(self, name)}
        if self.protocol != "5":
            params["protocol"] = self.protocol
        query = f"?{urlencode(params)}" if params else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{login}{self.host}:{self.port}{query}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client's TLS context (server certificate and host name verified), or None without TLS.

        Raises ``ValueError`` for a CA file on a plain ``mqtt://`` URL: that would look secure and not be.
        """
        if not self.tls:
            if self.ca_file or self.cert_file:
                raise ValueError("TLS files given for a plain mqtt:// URL: use mqtts:// to encrypt")
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context
