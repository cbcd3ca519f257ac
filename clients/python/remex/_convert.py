"""Python values <-> google.protobuf.Value, and SubmitRequest building.

build_submit_request is the one place where submit options become
SubmitRequest fields: the sync client, the executor and remex.aio all go
through it, so a new option (task model v2: idempotency_key, not_before,
deadline, retry, after) is added here and in SubmitOptions once.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from typing import Any, Mapping, Optional, Union

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
    """The keyword-only options of every submit (see Client.submit)."""

    input: Optional[bytes] = None
    pool: Optional[str] = None
    priority: int = 0
    labels: Optional[Mapping[str, str]] = None
    ttl: Optional[Duration] = None
    queue_timeout: Optional[Duration] = None
    run_timeout: Optional[Duration] = None
    max_attempts: Optional[int] = None


def build_submit_request(function: str, args: JSON,
                         options: SubmitOptions) -> executor_pb2.SubmitRequest:
    """The SubmitRequest for `function(args)` with `options`."""
    if not isinstance(function, str) or not function:
        raise TypeError("remex: function must be a non-empty str (its name)")
    request = executor_pb2.SubmitRequest(function=function)
    if args is not None:
        to_value(args, request.args)
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
    return request
