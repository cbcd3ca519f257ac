"""The Session stream under a sync Client: batches up, demultiplexes down."""

from __future__ import annotations

import collections
import threading
import time
from typing import TYPE_CHECKING, Deque, Dict, Iterator, List, Optional, Tuple

import grpc

from remex._channel import MAX_MESSAGE_BYTES, Metadata
from remex._errors import RpcError, status_code
from remex._future import Future
from remex.v1 import executor_pb2
from remex.v1 import executor_pb2_grpc

if TYPE_CHECKING:
    from remex._client import Client

_SUBMIT, _WATCH, _CANCEL = range(3)
# Room for the SessionRequest's own framing around the items.
_MESSAGE_MARGIN = 64 << 10


class _Stream:
    """One Session call. `closing` tells its request generator to end."""

    def __init__(self) -> None:
        self.call: Optional[grpc.Call] = None
        self.reader: Optional[threading.Thread] = None
        self.closing = False
        self.got_response = False


class Session:
    """Sends a client's submits, watches and cancels over one Session stream
    and resolves their futures from its answers.

    Callers enqueue items; the stream's request generator (run by gRPC on its
    own thread, which fetches the next message only once the previous one is
    written) drains whatever has queued meanwhile into one SessionRequest, up
    to `max_batch_items` and `max_batch_bytes`: one thread or many, a busy
    client sends few, large messages. A reader thread applies each
    SessionResponse (accepted and failed before done, as the server orders
    them) and resolves futures outside the lock.

    Seqs come from one counter for submits, watches and cancels, so an answer
    names one item whatever its kind. The stream is opened on first use and
    again when items wait and none is open. If it breaks after it had
    answered something, the accepted tasks are watched again on a new stream
    (they outlive the session); submits sent but not answered fail with
    RpcError (the task may or may not exist); a stream that fails before any
    answer (the server is gone) fails every future waiting on the session,
    so nothing loops.

    Thread-safe: all state is guarded by `_cond`'s lock, which is never held
    while a future resolves (its callbacks may call back in).
    """

    def __init__(self, client: "Client", stub: executor_pb2_grpc.ExecutorStub,
                 metadata: Optional[Metadata], max_batch_items: int,
                 max_batch_bytes: int) -> None:
        self.client = client
        self._stub = stub
        self._metadata = metadata
        self._max_items = max_batch_items
        self._max_bytes = min(max_batch_bytes,
                              MAX_MESSAGE_BYTES - _MESSAGE_MARGIN)
        self._cond = threading.Condition()
        # Guarded by _cond.
        self._pending: Deque[Tuple[int, int, object, int]] = (
            collections.deque())
        self._futures: Dict[int, Future] = {}  # Submits, watches not ended.
        self._cancels: Dict[int, _Stream] = {}  # Cancels not yet answered.
        self._next_seq = 1
        self._stream: Optional[_Stream] = None
        self._closed = False

    # ---- Callers.

    def submit(self, future: Future,
               request: executor_pb2.SubmitRequest) -> None:
        size = request.ByteSize()
        if size > MAX_MESSAGE_BYTES - _MESSAGE_MARGIN:
            raise ValueError(f"remex: a submit of {size} bytes is over the "
                             f"{MAX_MESSAGE_BYTES}-byte message limit")
        self._enqueue(future, _SUBMIT, request, size)

    def watch(self, future: Future, task_id: str) -> None:
        future._id = task_id
        self._enqueue(future, _WATCH, task_id, len(task_id) + 8)

    def _enqueue(self, future: Future, kind: int, payload: object,
                 size: int) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("remex: the client is closed")
            seq = self._next_seq
            self._next_seq += 1
            future._seq = seq
            self._futures[seq] = future
            self._pending.append((kind, seq, payload, size))
            self._ensure_stream_locked()
            self._cond.notify_all()

    def cancel_future(self, future: Future) -> None:
        """Sends a cancel for `future`'s task (after its id, if it has none
        yet), or drops its submit if it has not been sent."""
        with self._cond:
            if self._futures.get(future._seq) is not future:
                return  # Ended or refused already.
            if future._stream is None and not future._accepted:
                # Still in _pending: the generator skips it.
                future._dropped = True
                del self._futures[future._seq]
                future._id_known.set()
            elif future._accepted:
                self._enqueue_cancel_locked(future._id)
            else:
                future._cancel_wanted = True

    def _enqueue_cancel_locked(self, task_id: str) -> None:
        if self._closed:
            return
        seq = self._next_seq
        self._next_seq += 1
        self._pending.append((_CANCEL, seq, task_id, len(task_id) + 8))
        self._ensure_stream_locked()
        self._cond.notify_all()

    def close(self, flush_timeout: float = 5.0) -> None:
        """Sends what is queued (within `flush_timeout` seconds) and waits
        for the answers to cancels, then cancels the stream: futures still
        waiting fail with RpcError CANCELLED. The tasks go on on the server.
        """
        deadline = time.monotonic() + flush_timeout
        with self._cond:
            if self._closed:
                return
            while (self._stream is not None and
                   (self._pending or self._cancels)):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            self._closed = True
            stream = self._stream
            if stream is not None:
                stream.closing = True
            self._cond.notify_all()
            dropped = [f for f in self._futures.values() if f._stream is None]
            for future in dropped:
                del self._futures[future._seq]
            self._pending.clear()
        error = RpcError(grpc.StatusCode.CANCELLED, "the client was closed")
        for future in dropped:
            future._fail(error)
        if stream is not None:
            if stream.call is not None:
                stream.call.cancel()
            if (stream.reader is not None and
                    stream.reader is not threading.current_thread()):
                stream.reader.join()

    # ---- The stream.

    def _ensure_stream_locked(self) -> None:
        if self._stream is not None or self._closed:
            return
        stream = _Stream()
        self._stream = stream
        stream.call = self._stub.Session(self._requests(stream),
                                         metadata=self._metadata)
        stream.reader = threading.Thread(
            target=self._read, args=(stream,), name="remex-session-reader",
            daemon=True)
        stream.reader.start()

    def _requests(self, stream: _Stream
                  ) -> Iterator[executor_pb2.SessionRequest]:
        while True:
            with self._cond:
                while not self._pending and not stream.closing:
                    self._cond.wait()
                if stream.closing:
                    return  # Half-closes the stream.
                request = self._take_batch_locked(stream)
                self._cond.notify_all()  # close() waits for _pending.
            if request is not None:
                yield request

    def _take_batch_locked(self, stream: _Stream
                           ) -> Optional[executor_pb2.SessionRequest]:
        request = executor_pb2.SessionRequest()
        items = 0
        size = 0
        pending = self._pending
        while pending and items < self._max_items:
            kind, seq, payload, item_size = pending[0]
            if items and size + item_size > self._max_bytes:
                break
            pending.popleft()
            if kind == _CANCEL:
                request.cancels.add(seq=seq, id=payload)
                self._cancels[seq] = stream
            else:
                future = self._futures.get(seq)
                if future is None or future._dropped:
                    continue
                future._stream = stream
                if kind == _SUBMIT:
                    request.submits.add(seq=seq, request=payload)
                else:
                    request.watches.add(seq=seq, id=payload)
            items += 1
            size += item_size
        return request if items else None

    def _read(self, stream: _Stream) -> None:
        error: Optional[grpc.RpcError] = None
        try:
            for response in stream.call:  # type: ignore[union-attr]
                stream.got_response = True
                self._apply(response)
        except grpc.RpcError as e:
            error = e
        except Exception as e:  # pylint: disable=broad-except
            error = e  # type: ignore[assignment]
        self._stream_ended(stream, error)

    def _apply(self, response: executor_pb2.SessionResponse) -> None:
        failed: List[Tuple[Future, RpcError]] = []
        ended: List[Tuple[Future, executor_pb2.Task]] = []
        with self._cond:
            futures = self._futures
            for accepted in response.accepted:
                if self._cancels.pop(accepted.seq, None) is not None:
                    continue
                future = futures.get(accepted.seq)
                if future is None:
                    continue
                future._id = accepted.id
                future._accepted = True
                future._id_known.set()
                if future._cancel_wanted:
                    future._cancel_wanted = False
                    self._enqueue_cancel_locked(accepted.id)
            for fail in response.failed:
                if self._cancels.pop(fail.seq, None) is not None:
                    continue  # The task ended meanwhile, or is gone.
                future = futures.pop(fail.seq, None)
                if future is not None:
                    failed.append((future, RpcError(
                        status_code(fail.error.code), fail.error.message)))
            for done in response.done:
                future = futures.pop(done.seq, None)
                if future is not None:
                    ended.append((future, done.task))
            if not self._cancels:
                self._cond.notify_all()  # close() waits for the cancels.
        for future, error in failed:
            future._fail(error)
        for future, task in ended:
            future._resolve_task(task)

    def _stream_ended(self, stream: _Stream,
                      error: Optional[BaseException]) -> None:
        if isinstance(error, grpc.RpcError):
            rpc_error = RpcError.from_grpc(error)
        elif error is not None:
            rpc_error = RpcError(grpc.StatusCode.INTERNAL, repr(error))
        else:
            rpc_error = RpcError(grpc.StatusCode.UNAVAILABLE,
                                 "the session ended with tasks unreported")
        failed: List[Future] = []
        with self._cond:
            if self._stream is stream:
                self._stream = None
            stream.closing = True
            for seq in [s for s, st in self._cancels.items() if st is stream]:
                del self._cancels[seq]
            if self._closed:
                rpc_error = RpcError(grpc.StatusCode.CANCELLED,
                                     "the client was closed")
            give_up = self._closed or not stream.got_response
            rewatch: List[Future] = []
            for seq, future in list(self._futures.items()):
                if future._stream is not stream and not (
                        give_up and future._stream is None):
                    continue
                if give_up or not future._accepted:
                    # A submit sent but not answered may or may not have
                    # made a task; a server that answered nothing is gone.
                    del self._futures[seq]
                    failed.append(future)
                else:
                    future._stream = None
                    rewatch.append(future)
            if give_up:
                self._pending.clear()
            for future in reversed(rewatch):
                self._pending.appendleft(
                    (_WATCH, future._seq, future._id, len(future._id) + 8))
            if self._pending:
                self._ensure_stream_locked()
            self._cond.notify_all()
        for future in failed:
            future._fail(rpc_error)
