"""JSON Schemas of the device protocol, generated from the pydantic models (the one definition).

``python -m schemas.export`` rewrites the generated block of ``docs/protocol.md``; a test fails when
the document and the models disagree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from schemas.device import CallEvent, DeviceCommand, DeviceStatus, MeterBatch, MeterReading, SmokeEvent

PROTOCOL_MODELS: dict[str, type[BaseModel]] = {
    "water_meter telemetry (one reading)": MeterReading,
    "water_meter telemetry (batch of interval readings)": MeterBatch,
    "smoke_alarm event": SmokeEvent,
    "call_button event": CallEvent,
    "status (every device; retained; Last Will)": DeviceStatus,
    "cmd (downlink, carewatch → call_button)": DeviceCommand,
}

BEGIN = "<!-- BEGIN GENERATED SCHEMAS (python -m schemas.export) -->"
END = "<!-- END GENERATED SCHEMAS -->"


def generated_block() -> str:
    parts = [BEGIN]
    for title, model in PROTOCOL_MODELS.items():
        schema = model.model_json_schema(mode="validation")
        parts.append(f"\n### {title}\n\n```json\n{json.dumps(schema, indent=2, ensure_ascii=False)}\n```\n")
    parts.append(END)
    return "\n".join(parts)


def render(document: str) -> str:
    """``document`` with its generated block replaced by the current schemas."""
    head, _, rest = document.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + generated_block() + tail


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/protocol.md")
    path.write_text(render(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
