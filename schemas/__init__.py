"""The one definition of every message, record and API body in carewatch.

Layers:
- ``device``: device protocol v1, the JSON devices publish over MQTT (strict, ``extra="forbid"``).
- ``records``: values carewatch makes itself once a message is accepted (frozen, slotted dataclasses):
  what storage persists and detectors consume.
- ``findings``: what a detector concludes, handed to alerting.
- ``alerts`` and ``api``: alert lifecycle vocabulary and the monitoring API's request/response bodies.

This package imports nothing else of ours, so every stage can depend on it.
"""
