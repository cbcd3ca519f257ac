"""The bookkeeping of a Session stream, shared by remex.Client and
remex.aio.Client: seqs, the queue of items to send, the futures waiting for
answers, and what to do when a stream ends. No I/O and no locks: the sync
session calls it under its lock, the asyncio one on its event loop.
"""

from __future__ import annotations

import collections
from typing import Any, Deque, Dict, List, Optional, Tuple

import grpc

from remex._channel import MAX_MESSAGE_BYTES
from remex._errors import RpcError, status_code
from remex.v1 import executor_pb2

SUBMIT, WATCH, CANCEL = range(3)
# Room for the SessionRequest's own framing around the items.
MESSAGE_MARGIN = 64 << 10
MAX_SUBMIT_BYTES = MAX_MESSAGE_BYTES - MESSAGE_MARGIN


class Stream:
    """One Session call. `closing` tells its writer to stop."""

    def __init__(self) -> None:
        self.call: Any = None
        self.worker: Any = None  # The reader thread, or the asyncio tasks.
        self.closing = False
        self.got_response = False


class SessionBook:
    """What a session has sent and what it waits for.

    A future here has the attributes `_seq`, `_stream` (the Stream it was
    sent on, None while queued), `_accepted`, `_dropped`, `_cancel_wanted`
    and `_id`, and the hooks `_on_accepted()` and `_on_dropped()`, which
    must not call back into the session.

    Seqs come from one counter for submits, watches and cancels, so an
    answer names one item whatever its kind.
    """

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self.max_items = max_items
        self.max_bytes = min(max_bytes, MAX_SUBMIT_BYTES)
        self.pending: Deque[Tuple[int, int, Any, int]] = collections.deque()
        self.futures: Dict[int, Any] = {}  # Submits and watches not ended.
        self.cancels: Dict[int, Stream] = {}  # Cancels not yet answered.
        self.next_seq = 1
        self.stream: Optional[Stream] = None
        self.closed = False

    def enqueue(self, future: Any, kind: int, payload: Any,
                size: int) -> None:
        if self.closed:
            raise RuntimeError("remex: the client is closed")
        if size > MAX_SUBMIT_BYTES:
            raise ValueError(f"remex: a submit of {size} bytes is over the "
                             f"{MAX_MESSAGE_BYTES}-byte message limit")
        seq = self.next_seq
        self.next_seq += 1
        future._seq = seq
        if kind == WATCH:
            future._id = payload
        self.futures[seq] = future
        self.pending.append((kind, seq, payload, size))

    def enqueue_cancel(self, task_id: str) -> None:
        if self.closed:
            return
        seq = self.next_seq
        self.next_seq += 1
        self.pending.append((CANCEL, seq, task_id, len(task_id) + 8))

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

    def take_batch(self, stream: Stream
                   ) -> Optional[executor_pb2.SessionRequest]:
        """The next SessionRequest of queued items, or None if none."""
        request = executor_pb2.SessionRequest()
        items = 0
        size = 0
        pending = self.pending
        while pending and items < self.max_items:
            kind, seq, payload, item_size = pending[0]
            if items and size + item_size > self.max_bytes:
                break
            pending.popleft()
            if kind == CANCEL:
                request.cancels.add(seq=seq, id=payload)
                self.cancels[seq] = stream
            else:
                future = self.futures.get(seq)
                if future is None or future._dropped:
                    continue
                future._stream = stream
                if kind == SUBMIT:
                    request.submits.add(seq=seq, request=payload)
                else:
                    request.watches.add(seq=seq, id=payload)
            items += 1
            size += item_size
        return request if items else None

    def apply(self, response: executor_pb2.SessionResponse
              ) -> Tuple[List[Tuple[Any, RpcError]],
                         List[Tuple[Any, executor_pb2.Task]]]:
        """Applies the answers; returns the futures to fail and those to
        resolve with their terminal task (to be done by the caller, outside
        its lock)."""
        failed = []
        ended = []
        futures = self.futures
        for accepted in response.accepted:
            if self.cancels.pop(accepted.seq, None) is not None:
                continue
            future = futures.get(accepted.seq)
            if future is None:
                continue
            future._id = accepted.id
            future._accepted = True
            future._on_accepted()
            if future._cancel_wanted:
                future._cancel_wanted = False
                self.enqueue_cancel(accepted.id)
        for fail in response.failed:
            if self.cancels.pop(fail.seq, None) is not None:
                continue  # The task ended meanwhile, or is gone.
            future = futures.pop(fail.seq, None)
            if future is not None:
                failed.append((future, RpcError(
                    status_code(fail.error.code), fail.error.message)))
        for done in response.done:
            future = futures.pop(done.seq, None)
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
            self.pending.appendleft(
                (WATCH, future._seq, future._id, len(future._id) + 8))
        return failed, rpc_error

    def close(self) -> List[Any]:
        """Marks the session closed; returns the futures never sent."""
        self.closed = True
        unsent = [f for f in self.futures.values() if f._stream is None]
        for future in unsent:
            del self.futures[future._seq]
        self.pending.clear()
        return unsent
