"""What every child process of the pipeline does first: log like the parent, and stop when told.

The control channel is a pipe, not a ``multiprocessing.Event``: a child killed while holding an Event's
lock would leave it locked for the next child and for the parent. EOF on the pipe also means the
pipeline process is gone (even by SIGKILL), so a child never works on for a pipeline that no longer
exists.
"""

from __future__ import annotations

import logging
import threading
from multiprocessing.connection import Connection

log = logging.getLogger(__name__)


def start_child(name: str, log_level: str, control: Connection) -> threading.Event:
    """Configure logging and return an event set when the parent asks to stop or disappears."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def watch_control() -> None:
        try:
            control.recv()
        except (EOFError, OSError):
            log.error("pipeline process is gone; %s exiting", name)
        stop.set()

    threading.Thread(target=watch_control, name="control", daemon=True).start()
    return stop
