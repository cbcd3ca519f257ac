"""The hand-written encoders of submits (remex._convert, remex._book) make
the bytes protobuf would: checked by parsing them with protobuf and by
comparing them with the messages protobuf builds. No server needed."""

from __future__ import annotations

import collections
import datetime
import enum

import pytest
from google.protobuf import struct_pb2
from google.protobuf.internal import encoder

from remex import _book
from remex._convert import (SubmitOptions, build_submit_request,
                            encode_submit, encode_value, to_value, varint)
from remex.v1 import executor_pb2


class Color(enum.IntEnum):
    RED = 1


VALUES = [
    None, True, False, 0, 1, -1, 127, 128, 2**53, -(2**53) - 1, 2**63,
    0.5, -2.25, 1e300, "", "a", "héllo ✓" * 40, b"x".decode() * 300,
    [], {}, (), [1, "two", None, [3.5, {}]], (1, 2),
    {"a": 1, "b": [True, {"c": None}], "": "empty key", "ü": []},
    {"nested": {"deeper": {"deepest": list(range(200))}}},
    # Not the exact types: encode_value hands them to to_value.
    collections.OrderedDict([("x", 1)]), Color.RED,
    {"inner": collections.OrderedDict([("y", [Color.RED])])},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_encode_value_makes_the_bytes_to_value_makes(value) -> None:
    expected = to_value(value)
    encoded = encode_value(value)
    assert struct_pb2.Value.FromString(encoded) == expected
    # Same bytes too (one field per message, maps in insertion order
    # whichever way they are written: protobuf keeps Struct maps unordered,
    # so compare parsed messages for dicts of several keys).
    if not isinstance(value, dict) or len(value) < 2:
        assert encoded == expected.SerializeToString()


@pytest.mark.parametrize("value, error", [
    (float("nan"), ValueError), (float("inf"), ValueError),
    ({1: "int key"}, TypeError), ([object()], TypeError),
    (b"bytes", TypeError), ({"a": {"b": float("-inf")}}, ValueError),
    (10**400, TypeError),
])
def test_encode_value_raises_as_to_value(value, error) -> None:
    with pytest.raises(error):
        to_value(value)
    with pytest.raises(error):
        encode_value(value)


def test_varint_matches_protobuf() -> None:
    numbers = list(range(0, 70000, 7)) + [
        2**14 - 1, 2**14, 2**21 - 1, 2**21, 2**28, 2**35 + 3, 2**63 - 1]
    for number in numbers:
        assert varint(number) == encoder._VarintBytes(number), number  # pylint: disable=protected-access


OPTIONS = [
    SubmitOptions(),
    SubmitOptions(input=b"\x00\x01" * 1000, pool="io", priority=-3,
                  labels={"a": "b", "c": "d"}, ttl=1.5,
                  queue_timeout=datetime.timedelta(milliseconds=250),
                  run_timeout=3, max_attempts=2),
    SubmitOptions(priority=7),
]


@pytest.mark.parametrize("options", OPTIONS, ids=repr)
@pytest.mark.parametrize("args", [None, 5, -(2**60), 2.5, "s",
                                  {"x": [1, None]}, 10**30])
def test_encode_submit_equals_build_submit_request(args, options) -> None:
    expected = build_submit_request("échø", args, options)
    encoded = encode_submit("échø", args, options)
    assert executor_pb2.SubmitRequest.FromString(encoded) == expected
    # Encoded once per SubmitOptions, and the same the second time.
    assert encode_submit("échø", args, options) == encoded


def test_encode_submit_checks_as_build_submit_request() -> None:
    for function in ["", None, 3, ["echo"]]:
        with pytest.raises(TypeError):
            encode_submit(function, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encode_submit("echo", None, SubmitOptions(input="not bytes"))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        encode_submit("echo", None, SubmitOptions(ttl=-1))


class _Item:
    _dropped = False
    _stream = None


def test_book_frames_parse_as_one_session_request() -> None:
    book = _book.SessionBook(max_items=1000, max_bytes=1 << 20)
    requests = [encode_submit("echo", i) for i in range(300)]
    items = []
    for request in requests:
        item = _Item()
        book.prepare_submit(item, request)
        book.enqueue(item)
        items.append(item)
    watch = _Item()
    book.prepare_watch(watch, "T" * 21)
    book.enqueue(watch)
    book.enqueue_cancel("C" * 21)
    # Seqs past one and two varint bytes.
    book.next_seq = iter(range(2**21, 2**22)).__next__
    late = _Item()
    book.prepare_submit(late, requests[7])
    book.enqueue(late)
    stream = _book.Stream()
    data = book.take_batch(stream)
    message = executor_pb2.SessionRequest.FromString(data)
    assert [s.seq for s in message.submits] == [
        i._seq for i in items] + [2**21]
    assert [s.request.SerializeToString() for s in message.submits] == [
        r for r in requests] + [requests[7]]
    assert [(w.seq, w.id) for w in message.watches] == [(watch._seq, "T" * 21)]
    assert [c.id for c in message.cancels] == ["C" * 21]
    assert all(i._stream is stream and i._frame is None for i in items)
    assert book.take_batch(stream) is None


def test_book_batches_stop_at_the_item_and_byte_limits() -> None:
    book = _book.SessionBook(max_items=10, max_bytes=1 << 20)
    for i in range(25):
        item = _Item()
        book.prepare_submit(item, encode_submit("echo", i))
        book.enqueue(item)
    stream = _book.Stream()
    sizes = []
    while True:
        data = book.take_batch(stream)
        if data is None:
            break
        sizes.append(len(executor_pb2.SessionRequest.FromString(data).submits))
    assert sizes == [10, 10, 5]
    big = encode_submit("echo", None, SubmitOptions(input=b"x" * 600_000))
    book = _book.SessionBook(max_items=100, max_bytes=1 << 20)
    for _ in range(3):
        item = _Item()
        book.prepare_submit(item, big)
        book.enqueue(item)
    counts = []
    while (data := book.take_batch(stream)) is not None:
        counts.append(len(executor_pb2.SessionRequest.FromString(data).submits))
    assert counts == [1, 1, 1]  # Two would pass max_bytes.


def test_book_sends_a_lone_item_as_a_batch_of_one() -> None:
    # take_batch's one-item path: a submit, a cancel, a dropped submit.
    book = _book.SessionBook(max_items=10, max_bytes=1 << 20)
    stream = _book.Stream()
    item = _Item()
    book.prepare_submit(item, encode_submit("echo", 7))
    book.enqueue(item)
    message = executor_pb2.SessionRequest.FromString(book.take_batch(stream))
    assert [s.seq for s in message.submits] == [item._seq]
    assert message.submits[0].request.function == "echo"
    assert item._stream is stream and item._frame is None
    assert book.take_batch(stream) is None
    book.enqueue_cancel("C" * 21)
    message = executor_pb2.SessionRequest.FromString(book.take_batch(stream))
    assert [c.id for c in message.cancels] == ["C" * 21]
    assert list(book.cancels.values()) == [stream]
    class _Future(_Item):
        _accepted = False
        _answered = False

        def _on_dropped(self) -> None:
            self._answered = True

    dropped = _Future()
    book.prepare_submit(dropped, encode_submit("echo", 8))
    book.enqueue(dropped)
    book.cancel(dropped)  # Not sent yet: dropped, not cancelled.
    assert dropped._dropped and dropped._answered
    assert book.take_batch(stream) is None and not book.pending
