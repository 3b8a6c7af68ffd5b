"""Pure parts of the ingest: the bounded inbox (back-pressure) and live sequence-gap counting."""

from __future__ import annotations

import threading
import time

from ingest.inbox import Inbox
from ingest.sequence import SequenceTracker
from schemas.device import SEQ_MODULUS


def test_inbox_takes_in_order_and_in_batches() -> None:
    inbox: Inbox[int] = Inbox(10)
    for k in range(7):
        inbox.put(k)
    assert inbox.take(5, 0) == [0, 1, 2, 3, 4]
    assert inbox.take(5, 0) == [5, 6]
    started = time.monotonic()
    assert inbox.take(5, 0.05) == []
    assert time.monotonic() - started >= 0.04


def test_inbox_blocks_the_producer_when_full_and_wakes_the_consumer() -> None:
    inbox: Inbox[int] = Inbox(3)
    produced: list[int] = []

    def produce() -> None:
        for k in range(6):
            inbox.put(k)
            produced.append(k)

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.1)
    assert produced == [0, 1, 2]  # back-pressure: the fourth put waits
    assert inbox.qsize() == 3
    taken = inbox.take(10, 1.0)
    producer.join(timeout=2)
    taken += inbox.take(10, 1.0)
    assert taken == [0, 1, 2, 3, 4, 5]
    assert inbox.qsize() == 0


def test_sequence_tracker_counts_gaps_across_the_wrap_and_ignores_repeats() -> None:
    tracker = SequenceTracker(max_gap=100)
    top = SEQ_MODULUS - 1
    steps = [("d", top - 1), ("d", top), ("d", 1), ("d", 1), ("d", 0), ("d", 5), ("d", 5000), ("d", 5001)]
    assert [tracker.observe(device, seq) for device, seq in steps] == [0, 0, 1, 0, 0, 3, 0, 0]
    assert tracker.observe("other", 7) == 0


def test_sequence_tracker_memory_is_bounded() -> None:
    tracker = SequenceTracker(max_devices=3)
    for k in range(10):
        tracker.observe(f"d{k}", 1)
    assert len(tracker._last) <= 3
