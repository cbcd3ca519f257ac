"""The bookkeeping of a Session stream, shared by remex.Client and
remex.aio.Client: seqs, the queue of items to send, the futures waiting for
answers, and what to do when a stream ends. No I/O and no locks: the sync
session calls it under its lock, the asyncio one on its event loop.
"""

from __future__ import annotations

import collections
import itertools
from typing import Any, Deque, Dict, List, Optional, Tuple

import grpc

from remex._channel import MAX_MESSAGE_BYTES
from remex._convert import varint
from remex._errors import RpcError, status_code
from remex.v1 import executor_pb2

# Room for the SessionRequest's own framing around the items.
MESSAGE_MARGIN = 64 << 10
MAX_SUBMIT_BYTES = MAX_MESSAGE_BYTES - MESSAGE_MARGIN


def _item_frame(key: bytes, seq: int, payload: bytes) -> bytes:
    """One SessionSubmit/Watch/Cancel (seq = 1, request or id = 2) as the
    field `key` of a SessionRequest."""
    head = b"\x08" + varint(seq) + b"\x12" + varint(len(payload))
    return key + varint(len(head) + len(payload)) + head + payload


def submit_frame(seq: int, request: bytes) -> bytes:
    """A SessionSubmit of `request` (a serialized SubmitRequest) as the
    field `submits` (1) of a SessionRequest: _item_frame, inlined, as it
    runs once per submit."""
    head = b"\x08" + varint(seq) + b"\x12" + varint(len(request))
    return b"\x0a" + varint(len(head) + len(request)) + head + request


def check_submit_size(request: bytes) -> None:
    if len(request) > MAX_SUBMIT_BYTES:
        raise ValueError(f"remex: a submit of {len(request)} bytes is over "
                         f"the {MAX_MESSAGE_BYTES}-byte message limit")


def _watch_frame(seq: int, task_id: str) -> bytes:
    return _item_frame(b"\x12", seq, task_id.encode())  # watches = 2


class _Cancel:
    """A SessionCancel waiting in SessionBook.pending."""

    __slots__ = ("_seq", "_frame")

    def __init__(self, seq: int, task_id: str) -> None:
        self._seq = seq
        self._frame = _item_frame(b"\x1a", seq, task_id.encode())  # cancels


class Stream:
    """One Session call. `closing` tells its writer to stop."""

    def __init__(self) -> None:
        self.call: Any = None
        self.worker: Any = None  # The reader thread, or the asyncio tasks.
        self.closing = False
        self.got_response = False


class SessionBook:
    """What a session has sent and what it waits for.

    A future here has the attributes `_seq`, `_frame` (its bytes in a
    SessionRequest, until sent), `_stream` (the Stream it was sent on, None
    while queued), `_accepted`, `_dropped`, `_cancel_wanted` and `_id`, and
    the hooks `_on_accepted()` and `_on_dropped()`, which must not call back
    into the session.

    Seqs come from one counter for submits, watches and cancels, so an
    answer names one item whatever its kind. Items wait in `pending` with
    the bytes they take in a SessionRequest (frames), made by
    `prepare_submit` and `prepare_watch` before the caller takes its lock,
    so that `take_batch` only joins them: the stream sends SessionRequests
    as bytes (no message is built, copied or serialized per submit).

    Not thread-safe: callers hold their lock around every method but
    `prepare_submit` and `prepare_watch` (which only draw a seq).
    """

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self.max_items = max_items
        self.max_bytes = min(max_bytes, MAX_SUBMIT_BYTES)
        # Futures and _Cancels with their frames, in send order.
        self.pending: Deque[Any] = collections.deque()
        self.futures: Dict[int, Any] = {}  # Submits and watches not ended.
        self.cancels: Dict[int, Stream] = {}  # Cancels not yet answered.
        # itertools.count's next is atomic under the GIL: no lock needed.
        self.next_seq = itertools.count(1).__next__
        self.stream: Optional[Stream] = None
        self.closed = False

    def prepare_submit(self, future: Any, request: bytes) -> None:
        """Gives `future` a seq and the frame of a submit of `request` (a
        serialized SubmitRequest). No lock needed."""
        check_submit_size(request)
        seq = self.next_seq()
        future._seq = seq
        future._frame = submit_frame(seq, request)

    def prepare_watch(self, future: Any, task_id: str) -> None:
        """As prepare_submit, for a watch of `task_id`."""
        seq = self.next_seq()
        future._seq = seq
        future._id = task_id
        future._frame = _watch_frame(seq, task_id)

    def enqueue(self, future: Any) -> None:
        """Queues a future made ready by prepare_submit or prepare_watch."""
        if self.closed:
            raise RuntimeError("remex: the client is closed")
        self.futures[future._seq] = future
        self.pending.append(future)

    def enqueue_cancel(self, task_id: str) -> None:
        if self.closed:
            return
        self.pending.append(_Cancel(self.next_seq(), task_id))

    def cancel(self, future: Any) -> None:
        """Queues a cancel of `future`'s task (once its id has come), or
        drops its submit if it has not been sent."""
        if self.futures.get(future._seq) is not future:
            return  # Ended or refused already.
        if future._stream is None and not future._accepted:
            future._dropped = True  # take_batch skips it.
            del self.futures[future._seq]
            future._on_dropped()
        elif future._accepted:
            self.enqueue_cancel(future._id)
        else:
            future._cancel_wanted = True

    def take_batch(self, stream: Stream) -> Optional[bytes]:
        """The next SessionRequest of queued items, serialized, or None if
        none."""
        parts = []
        size = 0
        pending = self.pending
        max_items = self.max_items
        max_bytes = self.max_bytes
        while pending and len(parts) < max_items:
            item = pending[0]
            frame = item._frame
            if parts and size + len(frame) > max_bytes:
                break
            pending.popleft()
            if item.__class__ is _Cancel:
                self.cancels[item._seq] = stream
            else:
                if item._dropped:
                    continue
                item._stream = stream
                item._frame = None  # Sent: its input need not be kept.
            parts.append(frame)
            size += len(frame)
        return b"".join(parts) if parts else None

    def apply(self, response: executor_pb2.SessionResponse
              ) -> Tuple[List[Tuple[Any, RpcError]],
                         List[Tuple[Any, executor_pb2.Task]]]:
        """Applies the answers; returns the futures to fail and those to
        resolve with their terminal task (to be done by the caller, outside
        its lock)."""
        failed = []
        ended = []
        futures = self.futures
        cancels = self.cancels
        for accepted in response.accepted:
            seq = accepted.seq
            if cancels and cancels.pop(seq, None) is not None:
                continue
            future = futures.get(seq)
            if future is None:
                continue
            future._id = accepted.id
            future._accepted = True
            future._on_accepted()
            if future._cancel_wanted:
                future._cancel_wanted = False
                self.enqueue_cancel(future._id)
        for fail in response.failed:
            if cancels and cancels.pop(fail.seq, None) is not None:
                continue  # The task ended meanwhile, or is gone.
            future = futures.pop(fail.seq, None)
            if future is not None:
                failed.append((future, RpcError(
                    status_code(fail.error.code), fail.error.message)))
        pop = futures.pop
        for done in response.done:
            future = pop(done.seq, None)
            if future is not None:
                ended.append((future, done.task))
        return failed, ended

    def stream_ended(self, stream: Stream, error: Optional[BaseException]
                     ) -> Tuple[List[Any], RpcError]:
        """Forgets `stream`. If it had answered something, its accepted
        tasks are queued to be watched again on a new stream (they outlive
        the session); submits it carried but did not answer fail (the task
        may or may not exist). If it answered nothing (the server is gone)
        or the client is closed, every waiting future fails, so nothing
        loops. Returns the futures to fail and the error for them; the
        caller opens a new stream if `pending` is not empty."""
        if isinstance(error, RpcError):
            rpc_error = error
        elif isinstance(error, grpc.RpcError):
            rpc_error = RpcError.from_grpc(error)
        elif error is not None:
            rpc_error = RpcError(grpc.StatusCode.CANCELLED
                                 if self.closed else grpc.StatusCode.INTERNAL,
                                 repr(error))
        else:
            rpc_error = RpcError(grpc.StatusCode.UNAVAILABLE,
                                 "the session ended with tasks unreported")
        if self.closed:
            rpc_error = RpcError(grpc.StatusCode.CANCELLED,
                                 "the client was closed")
        if self.stream is stream:
            self.stream = None
        stream.closing = True
        for seq in [s for s, st in self.cancels.items() if st is stream]:
            del self.cancels[seq]
        give_up = self.closed or not stream.got_response
        failed = []
        rewatch = []
        for seq, future in list(self.futures.items()):
            if future._stream is not stream and not (
                    give_up and future._stream is None):
                continue
            if give_up or not future._accepted:
                del self.futures[seq]
                failed.append(future)
            else:
                future._stream = None
                rewatch.append(future)
        if give_up:
            self.pending.clear()
        for future in reversed(rewatch):
            future._frame = _watch_frame(future._seq, future._id)
            self.pending.appendleft(future)
        return failed, rpc_error

    def close(self) -> List[Any]:
        """Marks the session closed; returns the futures never sent."""
        self.closed = True
        unsent = [f for f in self.futures.values() if f._stream is None]
        for future in unsent:
            del self.futures[future._seq]
        self.pending.clear()
        return unsent
