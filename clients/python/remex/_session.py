"""The Session stream under a sync Client: batches up, demultiplexes down."""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from typing import TYPE_CHECKING, Iterator, Optional

import grpc

from remex._book import (MAX_SUBMIT_BYTES, SessionBook, Stream,
                         check_submit_size, submit_frame)
from remex._channel import Metadata
from remex._errors import RpcError
from remex._future import end_quietly
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

# Sessions not yet closed, closed at interpreter exit (as concurrent.futures
# joins its workers) while gRPC's threads still run: left to the interpreter's
# teardown, a live call's __del__ can block for ever on a lock held by a
# gRPC thread that exit has already stopped.
_open_sessions: "weakref.WeakSet[Session]" = weakref.WeakSet()


def _close_open_sessions() -> None:
    for session in list(_open_sessions):
        session.close()


atexit.register(_close_open_sessions)


class _SyncStream(Stream):
    """A Stream whose writer (the request generator) sleeps on `wake`, a
    lock used as a signal: a caller wakes it with one release, in C, with
    none of a Condition's Python bookkeeping and no other thread woken.

    `idle` (guarded by the session's lock) is True while the writer sleeps
    or is about to; whoever clears it releases `wake` once, and the writer
    takes it back as it wakes, so `wake` is held whenever `idle` is False.
    """

    def __init__(self) -> None:
        super().__init__()
        self.idle = False
        self.wake = threading.Lock()
        self.wake.acquire()

    def wake_writer_locked(self) -> None:
        if self.idle:
            self.idle = False
            self.wake.release()


class Session:
    """Sends a client's submits, watches and cancels over one Session stream
    and resolves their futures from its answers.

    Callers queue items, already encoded (see SessionBook); the stream's
    request generator (run by gRPC on its own thread, which fetches the
    next message only once the previous one is written) joins whatever has
    queued meanwhile into one SessionRequest, up to `max_batch_items` and
    `max_batch_bytes`: one thread or many, a busy client sends few, large
    messages. A caller wakes that thread only when it sleeps (once per
    batch, not per submit). A reader thread applies each SessionResponse
    (accepted and failed before done, as the server orders them) and
    resolves its futures in one pass. The stream is opened on first use,
    and again when items wait and none is open; see SessionBook for what
    happens when one breaks.

    Thread-safe: all state is in the SessionBook, guarded by `_lock`, which
    is never held while a future's callbacks run (they may call back in):
    under it, the reader only writes the ends that run no code of anyone's
    (see end_quietly) and wakes result()'s sleepers. Threads that wait for
    room (max_in_flight) or for close()'s flush wait on `_cond` (over
    `_lock`), notified only while some wait; the writer sleeps on its own
    signal (see _SyncStream). So an answer wakes no thread but the ones
    waiting for it: on a 2-core machine every needless wakeup competes with
    the caller for the GIL.
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
        self._cond_waiters = 0  # Threads in _cond.wait. Guarded by _lock.
        self._book = SessionBook(max_batch_items, max_batch_bytes)
        _open_sessions.add(self)

    def submit(self, future: "Future", request: bytes) -> None:
        """Queues `request`, a serialized SubmitRequest, for `future`."""
        # book.prepare_submit, book.enqueue and _send_locked, inlined: this
        # runs per submit.
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
            stream = book.stream
            if stream is None:
                self._ensure_stream_locked()
            elif stream.idle:  # type: ignore[attr-defined]
                stream.wake_writer_locked()  # type: ignore[attr-defined]

    def watch(self, future: "Future", task_id: str) -> None:
        book = self._book
        book.prepare_watch(future, task_id)
        with self._lock:
            if self._max_in_flight:
                self._wait_for_room_locked(self._max_in_flight)
            book.enqueue(future)
            self._send_locked()

    def _wait_for_room_locked(self, limit: int) -> None:
        # Back-pressure, except on a reader (a done-callback that submits),
        # which would wait for itself.
        if _on_reader():
            return
        book = self._book
        while len(book.futures) >= limit and not book.closed:
            self._wait_locked(None)

    def _wait_locked(self, timeout: Optional[float]) -> None:
        self._cond_waiters += 1
        try:
            self._cond.wait(timeout)
        finally:
            self._cond_waiters -= 1

    def _notify_locked(self) -> None:
        """Wakes max_in_flight's and close()'s waiters, if any."""
        if self._cond_waiters:
            self._cond.notify_all()

    def _send_locked(self) -> None:
        """Gets what is pending sent: opens a stream, or wakes its writer."""
        stream = self._book.stream
        if stream is None:
            self._ensure_stream_locked()
        else:
            stream.wake_writer_locked()  # type: ignore[attr-defined]

    def cancel_future(self, future: "Future") -> None:
        with self._lock:
            self._book.cancel(future)
            if self._book.pending:
                self._send_locked()

    def close(self, flush_timeout: float = 5.0) -> None:
        """Sends what is queued (within `flush_timeout` seconds) and waits
        for the answers to cancels, then cancels the stream: futures still
        waiting fail with RpcError CANCELLED. The tasks go on on the server.
        """
        book = self._book
        deadline = time.monotonic() + flush_timeout
        with self._lock:
            if book.closed:
                return
            while (book.stream is not None and (book.pending or book.cancels)
                   and not _on_reader()):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wait_locked(left)
            unsent = book.close()
            stream = book.stream
            call = None
            if stream is not None:
                stream.closing = True
                stream.wake_writer_locked()  # type: ignore[attr-defined]
                call = stream.call
            self._notify_locked()
        _open_sessions.discard(self)
        error = RpcError(grpc.StatusCode.CANCELLED, "the client was closed")
        for future in unsent:
            future._fail(error)
        if call is not None:
            call.cancel()
            if stream.worker is not threading.current_thread():
                stream.worker.join()

    def _ensure_stream_locked(self) -> None:
        book = self._book
        if book.stream is not None or book.closed:
            return
        stream = _SyncStream()
        book.stream = stream
        stream.call = self._open(self._requests(stream),
                                 metadata=self._metadata)
        stream.worker = threading.Thread(
            target=self._read, args=(stream,), name="remex-session-reader",
            daemon=True)
        stream.worker.start()

    def _requests(self, stream: _SyncStream) -> Iterator[bytes]:
        lock = self._lock
        book = self._book
        wake = stream.wake
        while True:
            with lock:
                while not book.pending and not stream.closing:
                    stream.idle = True
                    lock.release()
                    try:
                        wake.acquire()  # Released by wake_writer_locked.
                    finally:
                        lock.acquire()
                if stream.closing:
                    return  # Half-closes the stream.
                request = book.take_batch(stream)
                self._notify_locked()  # close() waits for the queue.
            if request is not None:
                yield request

    def _read(self, stream: _SyncStream) -> None:
        _reader.active = True
        book = self._book
        apply = book.apply
        lock = self._lock
        error: Optional[BaseException] = None
        try:
            # What runs here between an answer's arrival and the release of
            # the thread waiting for it is all latency; so is what follows,
            # until this thread blocks in the next read and leaves the GIL,
            # but that overlaps with the waiter's own wakeup (tens of
            # microseconds). So the waiters are woken as soon as their
            # futures are written (end_quietly, under the lock), and the
            # rest comes after.
            for response in stream.call:
                stream.got_response = True
                with lock:
                    failed, ended = apply(response)
                    if ended:
                        ended = end_quietly(ended)  # The others: below.
                    if book.pending:
                        self._send_locked()  # Cancels apply queued.
                    if self._cond_waiters:
                        # max_in_flight's waiters, close().
                        self._cond.notify_all()
                if failed:
                    for future, rpc_error in failed:
                        future._fail(rpc_error)
                for future, task in ended:
                    future._resolve_task(task)
        except Exception as e:  # pylint: disable=broad-except
            # grpc.RpcError, or a bug: fail the futures, not hang. grpc's
            # error is the call itself, and its traceback holds frames that
            # hold the call: dropped, so that the call is freed when the
            # stream is, not left in a cycle. A cycle may wait for the
            # collector at interpreter exit, and there the call's __del__
            # can block for ever on a lock held by a grpc thread that exit
            # has stopped.
            error = e.with_traceback(None)
        with lock:
            failed, rpc_error = book.stream_ended(stream, error)
            stream.wake_writer_locked()  # It sees `closing` and returns.
            # Freed here, with gRPC's threads running, not when the last
            # future that names this stream goes (maybe at exit: see
            # _open_sessions).
            stream.call = None
            if book.pending:
                self._ensure_stream_locked()
            self._notify_locked()
        for future in failed:
            future._fail(rpc_error)
