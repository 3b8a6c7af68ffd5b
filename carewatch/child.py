"""What every child process of the pipeline does first: log like the parent, collect garbage less
often, and stop when told.

The control channel is a pipe, not a ``multiprocessing.Event``: a child killed while holding an Event's
lock would leave it locked for the next child and for the parent. EOF on the pipe also means the
pipeline process is gone (even by SIGKILL), so a child never works on for a pipeline that no longer
exists.
"""

from __future__ import annotations

import gc
import logging
import threading
from multiprocessing.connection import Connection

from carewatch.logsafe import configure_logging

log = logging.getLogger(__name__)


# Young-generation collections after this many net allocations (CPython's default is 700).
GC_YOUNG_THRESHOLD = 20_000


def tune_gc() -> None:
    """Collect garbage less often in a process that moves many short-lived objects (the ingest).

    CPython collects the young generation every 700 net allocations. A batch pipeline keeps each batch's
    objects alive until its commit, so they survive those collections, are promoted, and are traversed
    again by the older generations' collections together with everything imported at start-up. Measured
    on the ingest's drain (bench/ingest.py): 30-32 us of CPU per message with the defaults, 20-21 us
    after this. The start-up heap is frozen (never traversed again; it lives as long as the process) and
    young collections run 30 times less often; reference cycles are still collected, only later.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def name_process(name: str) -> None:
    """Show ``name`` as the process's name (``ps``, ``top``, /proc/PID/comm): every child of
    ``carewatch run`` is otherwise "python" with multiprocessing's spawn command line."""
    try:
        with open("/proc/self/comm", "w") as comm:  # Linux; the kernel keeps the first 15 bytes
            comm.write(f"cw-{name}"[:15])
    except OSError:
        pass  # not Linux, or /proc is not mounted: the name is only a convenience


def start_child(name: str, log_level: str, control: Connection) -> threading.Event:
    """Name the process, configure logging and garbage collection; return an event set when the parent
    asks to stop or disappears."""
    name_process(name)
    configure_logging(log_level)
    tune_gc()
    stop = threading.Event()

    def watch_control() -> None:
        try:
            control.recv()
        except (EOFError, OSError):
            log.error("pipeline process is gone; %s exiting", name)
        stop.set()

    threading.Thread(target=watch_control, name="control", daemon=True).start()
    return stop
