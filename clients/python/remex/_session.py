"""The Session stream under a sync Client: batches up, demultiplexes down."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Iterator, Optional

import grpc

from remex._book import (MAX_SUBMIT_BYTES, SessionBook, Stream,
                         check_submit_size, submit_frame)
from remex._channel import Metadata
from remex._errors import RpcError
from remex._future import resolve_ended
from remex.v1 import executor_pb2

if TYPE_CHECKING:
    from remex._client import Client
    from remex._future import Future  # pylint: disable=ungrouped-imports

# Marks the reader threads, where futures resolve and done-callbacks run:
# nothing there may wait for the stream's answers.
_reader = threading.local()


def _on_reader() -> bool:
    return getattr(_reader, "active", False)


SESSION_METHOD = "/remex.v1.Executor/Session"


class Session:
    """Sends a client's submits, watches and cancels over one Session stream
    and resolves their futures from its answers.

    Callers queue items, already encoded (see SessionBook); the stream's
    request generator (run by gRPC on its own thread, which fetches the
    next message only once the previous one is written) joins whatever has
    queued meanwhile into one SessionRequest, up to `max_batch_items` and
    `max_batch_bytes`: one thread or many, a busy client sends few, large
    messages. A caller wakes that thread only when it waits (once per
    batch, not per submit). A reader thread applies each SessionResponse
    (accepted and failed before done, as the server orders them) and
    resolves its futures in one pass. The stream is opened on first use,
    and again when items wait and none is open; see SessionBook for what
    happens when one breaks.

    Thread-safe: all state is in the SessionBook, guarded by `_cond`'s lock,
    which is never held while a future resolves (its callbacks may call
    back in).
    """

    def __init__(self, client: "Client", channel: grpc.Channel,
                 metadata: Optional[Metadata], max_batch_items: int,
                 max_batch_bytes: int,
                 max_in_flight: Optional[int] = None) -> None:
        self.client = client
        # SessionRequests go out as the bytes SessionBook joins.
        self._open = channel.stream_stream(
            SESSION_METHOD, request_serializer=None,
            response_deserializer=executor_pb2.SessionResponse.FromString)
        self._metadata = metadata
        self._max_in_flight = max_in_flight
        # `with self._lock` where no wait follows: a Condition's __enter__
        # is Python code, the lock's is not.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._book = SessionBook(max_batch_items, max_batch_bytes)
        self._writers_waiting = 0  # Guarded by _cond.

    def submit(self, future: "Future", request: bytes) -> None:
        """Queues `request`, a serialized SubmitRequest, for `future`."""
        # book.prepare_submit and _enqueue, inlined: this runs per submit.
        if len(request) > MAX_SUBMIT_BYTES:
            check_submit_size(request)  # Raises.
        book = self._book
        seq = book.next_seq()
        future._seq = seq
        future._frame = submit_frame(seq, request)
        with self._lock:
            futures = book.futures
            limit = self._max_in_flight
            if limit and len(futures) >= limit:
                self._wait_for_room_locked(limit)
            if book.closed:
                raise RuntimeError("remex: the client is closed")
            futures[seq] = future
            book.pending.append(future)
            if book.stream is None:
                self._ensure_stream_locked()
            if self._writers_waiting:
                self._cond.notify_all()

    def watch(self, future: "Future", task_id: str) -> None:
        book = self._book
        book.prepare_watch(future, task_id)
        with self._lock:
            if self._max_in_flight:
                self._wait_for_room_locked(self._max_in_flight)
            book.enqueue(future)
            if book.stream is None:
                self._ensure_stream_locked()
            if self._writers_waiting:
                self._cond.notify_all()

    def _wait_for_room_locked(self, limit: int) -> None:
        # Back-pressure, except on a reader (a done-callback that submits),
        # which would wait for itself.
        if _on_reader():
            return
        book = self._book
        while len(book.futures) >= limit and not book.closed:
            self._cond.wait()

    def cancel_future(self, future: "Future") -> None:
        with self._cond:
            self._book.cancel(future)
            if self._book.pending:
                self._ensure_stream_locked()
                self._cond.notify_all()

    def close(self, flush_timeout: float = 5.0) -> None:
        """Sends what is queued (within `flush_timeout` seconds) and waits
        for the answers to cancels, then cancels the stream: futures still
        waiting fail with RpcError CANCELLED. The tasks go on on the server.
        """
        book = self._book
        deadline = time.monotonic() + flush_timeout
        with self._cond:
            if book.closed:
                return
            while (book.stream is not None and (book.pending or book.cancels)
                   and not _on_reader()):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            unsent = book.close()
            stream = book.stream
            if stream is not None:
                stream.closing = True
            self._cond.notify_all()
        error = RpcError(grpc.StatusCode.CANCELLED, "the client was closed")
        for future in unsent:
            future._fail(error)
        if stream is not None:
            stream.call.cancel()
            if stream.worker is not threading.current_thread():
                stream.worker.join()

    def _ensure_stream_locked(self) -> None:
        book = self._book
        if book.stream is not None or book.closed:
            return
        stream = Stream()
        book.stream = stream
        stream.call = self._open(self._requests(stream),
                                 metadata=self._metadata)
        stream.worker = threading.Thread(
            target=self._read, args=(stream,), name="remex-session-reader",
            daemon=True)
        stream.worker.start()

    def _requests(self, stream: Stream) -> Iterator[bytes]:
        cond = self._cond
        book = self._book
        while True:
            with cond:
                while not book.pending and not stream.closing:
                    self._writers_waiting += 1
                    try:
                        cond.wait()
                    finally:
                        self._writers_waiting -= 1
                if stream.closing:
                    return  # Half-closes the stream.
                request = book.take_batch(stream)
                cond.notify_all()  # close() waits for the queue.
            if request is not None:
                yield request

    def _read(self, stream: Stream) -> None:
        _reader.active = True
        cond = self._cond
        book = self._book
        error: Optional[BaseException] = None
        try:
            for response in stream.call:
                stream.got_response = True
                with self._lock:
                    failed, ended = book.apply(response)
                    if book.pending:
                        self._ensure_stream_locked()
                    # The writer (cancels apply queued), max_in_flight's
                    # waiters, close().
                    cond.notify_all()
                for future, rpc_error in failed:
                    future._fail(rpc_error)
                resolve_ended(ended)
        except Exception as e:  # pylint: disable=broad-except
            error = e  # grpc.RpcError, or a bug: fail the futures, not hang.
        with cond:
            failed, rpc_error = book.stream_ended(stream, error)
            if book.pending:
                self._ensure_stream_locked()
            cond.notify_all()
        for future in failed:
            future._fail(rpc_error)
