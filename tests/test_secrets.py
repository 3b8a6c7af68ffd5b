"""Secrets come from the environment or from files (``CAREWATCH_*_FILE``), never from the repository."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from carewatch.secret_files import SecretFileError
from carewatch.settings import load_settings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CAREWATCH_"):
            monkeypatch.delenv(name)


def _secret(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def test_secret_settings_are_read_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql://carewatch:pw-from-file@db.internal:5432/carewatch"
    monkeypatch.setenv("CAREWATCH_DATABASE_URL_FILE", str(_secret(tmp_path, "db", url + "\n")))
    monkeypatch.setenv("CAREWATCH_SMTP_PASSWORD_FILE", str(_secret(tmp_path, "smtp", "s m t p\n")))
    monkeypatch.setenv("CAREWATCH_SMS_GATEWAY_TOKEN_FILE", str(_secret(tmp_path, "sms", "tok-123")))
    monkeypatch.setenv("CAREWATCH_MQTT_URL", "mqtt://ingest:from-env@broker:1883")

    settings = load_settings()

    assert settings.database_url == url  # exactly one trailing newline removed
    assert settings.smtp_password == "s m t p"
    assert settings.sms_gateway_token == "tok-123"
    assert settings.mqtt_url == "mqtt://ingest:from-env@broker:1883"  # the environment still works


def test_a_setting_given_twice_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREWATCH_SMTP_PASSWORD", "one")
    monkeypatch.setenv("CAREWATCH_SMTP_PASSWORD_FILE", str(_secret(tmp_path, "smtp", "two")))
    with pytest.raises(SecretFileError, match="CAREWATCH_SMTP_PASSWORD_FILE: both"):
        load_settings()


def test_an_unreadable_secret_file_stops_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREWATCH_SMS_GATEWAY_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(SecretFileError, match="cannot read") as raised:
        load_settings()
    assert raised.value.name == "CAREWATCH_SMS_GATEWAY_TOKEN_FILE"


def test_explicit_values_win_over_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREWATCH_DATABASE_URL_FILE", str(_secret(tmp_path, "db", "postgresql://file")))
    assert load_settings(database_url="postgresql://given").database_url == "postgresql://given"


def test_files_override_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "carewatch.toml"
    config.write_text('smtp_password = "from-toml"\nsmtp_host = "mail.internal"\n', encoding="utf-8")
    monkeypatch.setenv("CAREWATCH_CONFIG", str(config))
    monkeypatch.setenv("CAREWATCH_SMTP_PASSWORD_FILE", str(_secret(tmp_path, "smtp", "from-file")))
    settings = load_settings()
    assert settings.smtp_password == "from-file"
    assert settings.smtp_host == "mail.internal"


# --- nothing secret is committed ----------------------------------------------------------------------

# Credentials in URLs that are documentation placeholders, not secrets.
_PLACEHOLDER_CREDENTIALS = {"user:pass", "user:password", "alice:s%40cret", "carewatch.ingest:p%40ss"}
# Redacted ("***") or named ("PASSWORD") passwords, and f-string fields filled in at test time.
_PLACEHOLDER_PASSWORDS = {"***", "PASSWORD"}
_URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]*://\[?([^/\s:@'\"[]+:[^/\s@'\"]+)@", re.IGNORECASE)
_KEY_MATERIAL = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----"  # PEM keys (RSA, EC, OpenSSH, PKCS#8)
    r"|\bAKIA[0-9A-Z]{16}\b"  # AWS access key ids
    r"|\bLTAI[0-9A-Za-z]{12,20}\b"  # Aliyun AccessKey ids (the SMS vendor's)
    r"|\bcw_[0-9a-f]{16}_[A-Za-z0-9_-]{40,}\b"  # a carewatch API token in full
    r"|\$7\$\d+\$[A-Za-z0-9+/=]{12,}\$[A-Za-z0-9+/=]{40,}"  # a Mosquitto password hash
)
_BINARY_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".ico", ".woff", ".woff2", ".gz", ".zip", ".parquet", ".npz"}


def _tracked_files() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "-C", str(REPO), "ls-files", "-z"], check=True, capture_output=True, timeout=30
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.fail("the repository scan needs git and a git work tree (it scans what is committed)")
    return [REPO / name for name in listed.decode().split("\0") if name]


def test_no_secrets_or_keys_are_committed() -> None:
    findings = []
    for path in _tracked_files():
        if path.suffix.lower() in _BINARY_SUFFIXES or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        relative = path.relative_to(REPO)
        if relative == Path(__file__).relative_to(REPO):
            continue  # this file's examples are made up to be found
        for number, line in enumerate(text.splitlines(), 1):
            for match in _URL_CREDENTIALS.finditer(line):
                credentials = match.group(1)
                # Placeholders: documented examples, shell variables, "<printed>" in docs.
                placeholder = credentials.split(":", 1)[1] in _PLACEHOLDER_PASSWORDS or "{" in credentials
                if (
                    credentials not in _PLACEHOLDER_CREDENTIALS
                    and not placeholder
                    and not {"$", "<"} & set(credentials)
                ):
                    findings.append(f"{relative}:{number}: credentials in a URL")
            if _KEY_MATERIAL.search(line):
                findings.append(f"{relative}:{number}: key material")
    assert findings == [], "secrets belong in the environment or *_FILE files:\n" + "\n".join(findings)
