"""Settings read from files named by ``CAREWATCH_<NAME>_FILE``: how secrets reach carewatch.

Docker and Kubernetes mount secrets as files (``/run/secrets/...``); the convention of the official
PostgreSQL image and many others is an environment variable ending in ``_FILE`` that names the file.
Every text setting can be given that way: ``CAREWATCH_DATABASE_URL_FILE=/run/secrets/db_url`` reads the
database URL (password included) from the file instead of the environment, where it would be visible in
``/proc/<pid>/environ``, ``docker inspect`` and crash reports. Text settings only: the ones that can hold
a secret (URLs with passwords, the SMTP password, the SMS gateway token, webhook or gateway secrets,
bootstrap tokens), including settings added later, with no list to keep up to date.

One trailing newline is removed (``echo secret > file`` writes one). Giving both ``CAREWATCH_X`` and
``CAREWATCH_X_FILE`` is an error rather than a silent choice, and so is a file that cannot be read: a
service must not start with a default where its operator gave a secret.
"""

from __future__ import annotations

import os
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

FILE_SUFFIX = "_FILE"


class SecretFileError(ValueError):
    """A ``*_FILE`` setting that cannot be used; ``name`` is the environment variable."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


def _is_text(annotation: Any) -> bool:
    if annotation is str:
        return True
    if get_origin(annotation) in {Union, types.UnionType}:
        return all(arg is str or arg is type(None) for arg in get_args(annotation))
    return False


class FileSecretsSource(PydanticBaseSettingsSource):
    """Values of text settings from the files named by ``<prefix><NAME>_FILE`` environment variables."""

    def __init__(self, settings_cls: type[BaseSettings], environ: dict[str, str] | None = None) -> None:
        super().__init__(settings_cls)
        self._environ = dict(os.environ) if environ is None else environ
        self._prefix = str(settings_cls.model_config.get("env_prefix", "")).upper()

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Required by the base class; __call__ does the work for all fields at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            if not _is_text(field.annotation):
                continue
            direct = f"{self._prefix}{field_name.upper()}"
            name = direct + FILE_SUFFIX
            path = self._environ.get(name)
            if not path:
                continue
            if self._environ.get(direct):
                raise SecretFileError(name, f"both {direct} and {name} are set; give one")
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SecretFileError(name, f"cannot read {path}: {type(exc).__name__}") from exc
            values[field_name] = text.removesuffix("\n").removesuffix("\r")
        return values
