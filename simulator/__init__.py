"""Fleet simulator: seeded homes with water meters, smoke alarms and call buttons, publishing protocol v1.

Pure parts (no I/O, no wall clock): ``profiles`` and ``water`` (residents and their water use),
``devices`` (homes and their devices), ``schedule`` and ``engine`` (device behaviour over simulated time),
``scenarios`` (incidents and ground truth), ``faults`` (bad data), ``fleet`` (the API below) and
``demo`` (the scripted demo incidents). One I/O shell: ``publisher`` (paho-mqtt). ``cli`` is
``carewatch simulate``. See ``docs/simulator.md``.
"""

from simulator.demo import demo_scenarios
from simulator.devices import Home, MeterMode, SimDevice
from simulator.faults import FaultKind, FaultPlan
from simulator.fleet import Fleet, Simulation
from simulator.payloads import SimMessage
from simulator.scenarios import Incident, ScenarioKind, ScenarioRequest, TruthRecord, parse_scenarios

__all__ = [
    "FaultKind",
    "FaultPlan",
    "Fleet",
    "Home",
    "Incident",
    "MeterMode",
    "ScenarioKind",
    "ScenarioRequest",
    "SimDevice",
    "SimMessage",
    "Simulation",
    "TruthRecord",
    "demo_scenarios",
    "parse_scenarios",
]
