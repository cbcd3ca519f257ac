"""Python values <-> google.protobuf.Value, and SubmitRequest building.

build_submit_request is the one place where submit options become
SubmitRequest fields: the sync client, the executor and remex.aio all go
through it (encode_submit for the function and args, then the options'
fields as build_submit_request sets them), so a new option (task model v2:
idempotency_key, not_before, deadline, retry, after) is added there and in
SubmitOptions once.

Why submits are encoded by hand: building a SubmitRequest message, filling
its google.protobuf.Value through the C++ protobuf and serializing it cost
2-8 us per submit, where writing the same bytes with struct and bytes
joins costs 0.3-2.5 us (BENCHMARKS.md, "Python client"). The wire format of
a SubmitRequest's `function` and `args` (and of Value) is fixed by protobuf
and the proto; tests parse these bytes with protobuf and compare them with
the messages build_submit_request makes.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import struct
from typing import Any, Dict, Mapping, Optional, Union

from google.protobuf import duration_pb2
from google.protobuf import struct_pb2

from remex.v1 import executor_pb2

# Seconds (int or float) or a timedelta.
Duration = Union[int, float, datetime.timedelta]
# What args and results are: JSON values.
JSON = Any

_MAX_EXACT_INT = 2**53


def to_value(obj: JSON, value: Optional[struct_pb2.Value] = None
             ) -> struct_pb2.Value:
    """A JSON-like Python value (dict with str keys, list, tuple, str, int,
    float, bool, None) as a google.protobuf.Value."""
    if value is None:
        value = struct_pb2.Value()
    if obj is None:
        value.null_value = struct_pb2.NULL_VALUE
    elif isinstance(obj, bool):
        value.bool_value = obj
    elif isinstance(obj, (int, float)):
        if isinstance(obj, float) and not math.isfinite(obj):
            raise ValueError(f"remex: {obj} is not a JSON number")
        value.number_value = obj
    elif isinstance(obj, str):
        value.string_value = obj
    elif isinstance(obj, Mapping):
        fields = value.struct_value.fields
        if not obj:
            value.struct_value.SetInParent()
        for key, item in obj.items():
            if not isinstance(key, str):
                raise TypeError(f"remex: dict keys must be str, not {key!r}")
            to_value(item, fields[key])
    elif isinstance(obj, (list, tuple)):
        values = value.list_value.values
        value.list_value.SetInParent()
        for item in obj:
            to_value(item, values.add())
    else:
        raise TypeError(
            f"remex: {type(obj).__name__} is not a JSON value (use dict, "
            "list, str, numbers, bool, None; bytes go in input=)")
    return value


def from_value(value: struct_pb2.Value) -> JSON:
    """A google.protobuf.Value as a Python value. Numbers that are whole (and
    exact in a double) come back as int, as json.loads would read them."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        if number.is_integer() and abs(number) <= _MAX_EXACT_INT:
            return int(number)
        return number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return {k: from_value(v) for k, v in value.struct_value.fields.items()}
    if kind == "list_value":
        return [from_value(v) for v in value.list_value.values]
    return None  # null_value, or unset


class _NotPlain(Exception):
    """A value encode_value leaves to to_value (other types, errors)."""


_pack_double = struct.Struct("<d").pack
_VARINTS = [bytes((i,)) for i in range(128)]


def varint(number: int) -> bytes:
    """`number` (>= 0) as a protobuf varint."""
    if number < 0x80:
        return _VARINTS[number]
    if number < 0x4000:
        return bytes(((number & 0x7F) | 0x80, number >> 7))
    if number < 0x200000:
        return bytes(((number & 0x7F) | 0x80, ((number >> 7) & 0x7F) | 0x80,
                      number >> 14))
    out = bytearray()
    while number >= 0x80:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _encode_plain(obj: JSON) -> bytes:
    # The exact types only (subclasses, NaN, odd keys: _NotPlain), so that
    # to_value stays the one judge of what is allowed and of its errors.
    kind = type(obj)
    if kind is int or kind is float:
        if kind is float and not math.isfinite(obj):
            raise _NotPlain()
        try:
            return b"\x11" + _pack_double(obj)  # number_value = 2, fixed64
        except (OverflowError, struct.error):
            raise _NotPlain() from None
    if kind is str:
        data = obj.encode()
        return b"\x1a" + varint(len(data)) + data  # string_value = 3
    if obj is None:
        return b"\x08\x00"  # null_value = 1, NULL_VALUE (0)
    if kind is bool:
        return b"\x20\x01" if obj else b"\x20\x00"  # bool_value = 4
    if kind is dict:
        parts = []
        for key, item in obj.items():
            if type(key) is not str:  # pylint: disable=unidiomatic-typecheck
                raise _NotPlain()
            name = key.encode()
            value = _encode_plain(item)
            # A Struct.fields map entry: key = 1, value = 2.
            entry = (b"\x0a" + varint(len(name)) + name + b"\x12" +
                     varint(len(value)) + value)
            parts.append(b"\x0a" + varint(len(entry)) + entry)
        body = b"".join(parts)
        return b"\x2a" + varint(len(body)) + body  # struct_value = 5
    if kind is list or kind is tuple:
        parts = []
        for item in obj:
            value = _encode_plain(item)
            parts.append(b"\x0a" + varint(len(value)) + value)  # values = 1
        body = b"".join(parts)
        return b"\x32" + varint(len(body)) + body  # list_value = 6
    raise _NotPlain()


def encode_value(obj: JSON) -> bytes:
    """to_value(obj).SerializeToString(), faster: the same bytes for dict,
    list, tuple, str, int, float, bool and None (other types, such as
    Mapping subclasses, go through to_value, which raises for what is not
    JSON)."""
    try:
        return _encode_plain(obj)
    except _NotPlain:
        return to_value(obj).SerializeToString()


def to_duration(seconds: Duration, field: str) -> duration_pb2.Duration:
    if isinstance(seconds, datetime.timedelta):
        seconds = seconds.total_seconds()
    if not isinstance(seconds, (int, float)) or seconds < 0:
        raise ValueError(f"remex: {field} must be seconds >= 0 or a timedelta")
    duration = duration_pb2.Duration()
    duration.seconds = int(seconds)
    duration.nanos = int(round((seconds - int(seconds)) * 1e9))
    return duration


@dataclasses.dataclass(frozen=True)
class SubmitOptions:
    """The keyword-only options of every submit (see Client.submit).

    Frozen: a submit encodes an instance's fields once, on its first use,
    and keeps the bytes on it, so a `labels` mapping changed after that is
    not seen.
    """

    input: Optional[bytes] = None
    pool: Optional[str] = None
    priority: int = 0
    labels: Optional[Mapping[str, str]] = None
    ttl: Optional[Duration] = None
    queue_timeout: Optional[Duration] = None
    run_timeout: Optional[Duration] = None
    max_attempts: Optional[int] = None


DEFAULT_OPTIONS = SubmitOptions()

# function name -> its encoded `function` field (1), for the names in use.
_FUNCTION_FIELDS: Dict[str, bytes] = {}
_MAX_CACHED_FUNCTIONS = 1024


def _function_field(function: str) -> bytes:
    field = (_FUNCTION_FIELDS.get(function)
             if type(function) is str else None)  # pylint: disable=unidiomatic-typecheck
    if field is None:
        if not isinstance(function, str) or not function:
            raise TypeError(
                "remex: function must be a non-empty str (its name)")
        name = function.encode()
        field = b"\x0a" + varint(len(name)) + name
        if len(_FUNCTION_FIELDS) < _MAX_CACHED_FUNCTIONS:
            _FUNCTION_FIELDS[function] = field
    return field


def _options_fields(options: SubmitOptions) -> bytes:
    """The encoded fields of `options` (b"" for the defaults), made once
    per SubmitOptions (they are frozen) and kept on it."""
    if options is DEFAULT_OPTIONS:
        return b""
    encoded = options.__dict__.get("_encoded")
    if encoded is None:
        request = executor_pb2.SubmitRequest()
        _set_options(request, options)
        encoded = request.SerializeToString()
        object.__setattr__(options, "_encoded", encoded)
    return encoded


def encode_submit(function: str, args: JSON,
                  options: SubmitOptions = DEFAULT_OPTIONS) -> bytes:
    """The serialized SubmitRequest for `function(args)` with `options`:
    the bytes of build_submit_request(...).SerializeToString(), up to the
    order of fields (which protobuf parsers accept in any order)."""
    head = (_FUNCTION_FIELDS.get(function)
            if type(function) is str else None)  # pylint: disable=unidiomatic-typecheck
    if head is None:
        head = _function_field(function)
    tail = b"" if options is DEFAULT_OPTIONS else _options_fields(options)
    if args is None:
        return head + tail
    if type(args) is int:  # pylint: disable=unidiomatic-typecheck
        try:  # args = 2: a Value of 9 bytes, its number_value.
            return head + b"\x12\x09\x11" + _pack_double(args) + tail
        except OverflowError:
            pass  # encode_value leaves it to to_value.
    value = encode_value(args)
    return head + b"\x12" + varint(len(value)) + value + tail


def build_submit_request(function: str, args: JSON,
                         options: SubmitOptions) -> executor_pb2.SubmitRequest:
    """The SubmitRequest for `function(args)` with `options`."""
    if not isinstance(function, str) or not function:
        raise TypeError("remex: function must be a non-empty str (its name)")
    request = executor_pb2.SubmitRequest(function=function)
    if args is not None:
        to_value(args, request.args)
    _set_options(request, options)
    return request


def _set_options(request: executor_pb2.SubmitRequest,
                 options: SubmitOptions) -> None:
    if options.input is not None:
        if not isinstance(options.input, (bytes, bytearray, memoryview)):
            raise TypeError("remex: input must be bytes")
        request.input = bytes(options.input)
    if options.pool:
        request.pool = options.pool
    if options.priority:
        request.priority = int(options.priority)
    if options.labels:
        request.labels.update(options.labels)
    if options.ttl is not None:
        request.ttl.CopyFrom(to_duration(options.ttl, "ttl"))
    if options.queue_timeout is not None:
        request.queue_timeout.CopyFrom(
            to_duration(options.queue_timeout, "queue_timeout"))
    if options.run_timeout is not None:
        request.run_timeout.CopyFrom(
            to_duration(options.run_timeout, "run_timeout"))
    if options.max_attempts is not None:
        request.max_attempts = int(options.max_attempts)
