"""The raw MQTT 3.1.1 publisher (``simulator.wire``): packet bytes and PUBACK counting, on a socket pair."""

from __future__ import annotations

import socket

import pytest

from simulator.wire import WireConnection, _varint, connect_packet


def test_remaining_length_encoding() -> None:
    assert _varint(0) == b"\x00"
    assert _varint(127) == b"\x7f"
    assert _varint(128) == b"\x80\x01"
    assert _varint(16_383) == b"\xff\x7f"
    assert _varint(2_097_152) == b"\x80\x80\x80\x01"


def test_connect_packet_with_credentials() -> None:
    packet = connect_packet("dev-1", 60, "user", "pw")
    body = b"\x00\x04MQTT\x04" + bytes([0xC2]) + b"\x00\x3c" + b"\x00\x05dev-1" + b"\x00\x04user" + b"\x00\x02pw"
    assert packet == b"\x10" + bytes([len(body)]) + body


def test_publish_bytes_and_acks_counted_across_partial_reads() -> None:
    ours, broker = socket.socketpair()
    conn = WireConnection("c1")
    conn.sock = ours
    conn.publish("care/v1/dev/x/status", b'{"a":1}', retain=True)
    conn.publish("care/v1/dev/x/event", b"{}")
    conn.flush()
    topic1 = b"care/v1/dev/x/status"
    first = (
        b"\x33" + bytes([2 + len(topic1) + 2 + 7]) + b"\x00" + bytes([len(topic1)]) + topic1 + b"\x00\x01" + b'{"a":1}'
    )
    topic2 = b"care/v1/dev/x/event"
    second = b"\x32" + bytes([2 + len(topic2) + 2 + 2]) + b"\x00" + bytes([len(topic2)]) + topic2 + b"\x00\x02{}"
    assert broker.recv(4096) == first + second
    assert conn.in_flight == 2
    broker.sendall(b"\x40\x02\x00\x01\x40")  # one PUBACK and the first byte of the next
    conn.read()
    assert conn.acked == 1
    broker.sendall(b"\x02\x00\x02\xd0\x00")  # the rest of it, then a PINGRESP
    conn.read()
    assert conn.acked == 2
    assert conn.in_flight == 0
    broker.sendall(b"\x30\x05\x00\x01a\x00\x00")  # a PUBLISH to a publisher: refused, not misparsed
    with pytest.raises(ConnectionError):
        conn.read()
    conn.close()
    broker.close()


def test_packet_ids_wrap_without_zero() -> None:
    ours, broker = socket.socketpair()
    conn = WireConnection("c1")
    conn.sock = ours
    conn._mid = 0xFFFE
    for _ in range(3):
        conn.publish("t", b"")
    conn.flush()
    data = broker.recv(4096)
    assert [data[i + 5 : i + 7] for i in range(0, len(data), 7)] == [b"\xff\xff", b"\x00\x01", b"\x00\x02"]
    conn.close()
    broker.close()
