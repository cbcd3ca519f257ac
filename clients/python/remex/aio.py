"""remex.aio: the remex client over asyncio (grpc.aio).

    import remex.aio

    async with remex.aio.Client("localhost:50051") as client:
        future = client.submit("echo", {"x": 1})
        print(await future)                    # {'x': 1}
        results = await asyncio.gather(*(client.submit("echo", i)
                                         for i in range(1000)))

As remex.Client: one Session stream carries every submit, watch and cancel
(batched: whatever was queued while a message was written goes in the
next), and the futures resolve from it. Create and use a client on one event
loop; it is not thread-safe.

At most `max_in_flight` submits and watches are out at once (sent or
queued, not yet ended); `submit` never blocks, so the ones past the bound
wait in the client, unsent, until tasks end. A producer that must not run
ahead awaits `wait_for_room()` before each submit:

    async with remex.aio.Client(address, max_in_flight=1000) as client:
        futures = []
        for item in items:
            await client.wait_for_room()
            futures.append(client.submit("work", item))
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, AsyncIterator, Deque, Mapping, Optional

import grpc
import grpc.aio

from remex._book import SessionBook, Stream
from remex._channel import TLSOption, make_aio_channel, metadata
from remex._convert import (DEFAULT_OPTIONS, JSON, Duration, SubmitOptions,
                            encode_submit, from_value)
from remex._errors import RpcError, State, TaskError, task_outcome  # noqa: F401
from remex.v1 import executor_pb2
from remex._session import SESSION_METHOD
from remex.v1 import executor_pb2_grpc

__all__ = ["Client", "Future", "RpcError", "TaskError"]


class Future(asyncio.Future):
    """The asyncio future of one task: `await future` gives its JSON result,
    or raises TaskError (FAILED, CANCELLED, TIMED_OUT, WORKER_LOST) or
    RpcError (refused by the server, or the stream broke). It is an
    asyncio.Future, so asyncio.wait, gather, as_completed and wait_for take
    it.

    `cancel()` cancels the task on the server too (or drops a submit not yet
    sent) and the future at once, as asyncio does: awaiting it then raises
    asyncio.CancelledError. Note that asyncio.wait_for(future, t) cancels it
    on timeout, and with it the task; use asyncio.wait([future], timeout=t)
    or asyncio.shield to leave the task running.
    """

    def __init__(self, client: "Client", function: str) -> None:
        super().__init__()
        self._client = client
        self._function = function
        self._seq: Optional[int] = None
        self._stream: Optional[Stream] = None
        self._accepted = False
        self._dropped = False
        self._cancel_wanted = False
        self._id: Optional[str] = None
        self._frame: Optional[bytes] = None  # See SessionBook.
        self._held = False  # Held back by max_in_flight, not yet queued.
        self._answered: asyncio.Future = self.get_loop().create_future()
        self._task: Optional[executor_pb2.Task] = None

    @property
    def function(self) -> str:
        return self._function

    @property
    def id(self) -> Optional[str]:
        """The task's id once the server has accepted it, else None (see
        `accepted()`)."""
        return self._id

    async def accepted(self) -> str:
        """Waits for the server's answer to the submit; returns the task id.
        Raises RpcError if it was refused, asyncio.CancelledError if it was
        cancelled before it was sent."""
        await asyncio.shield(self._answered)
        if self._id is None:
            if self._dropped:
                raise asyncio.CancelledError()
            raise self.exception()  # type: ignore[misc]
        return self._id

    @property
    def task(self) -> Optional[executor_pb2.Task]:
        """The terminal task (remex.v1.Task) once reported, else None."""
        return self._task

    async def fetch_task(self) -> executor_pb2.Task:
        """The whole task: the terminal one if reported, else a Get."""
        if self._task is not None:
            return self._task
        return await self._client.get(await self.accepted())

    def running(self) -> bool:
        """True from the server's acceptance of the task until its end."""
        return self._accepted and not self.done()

    async def output(self) -> bytes:
        """The output bytes of the task; waits and raises as `await`."""
        await self
        assert self._task is not None
        return self._task.output

    def cancel(self, msg: Any = None) -> bool:
        if self.done():
            return False
        self._client._cancel_future(self)
        return super().cancel(msg)

    # SessionBook's hooks.
    def _on_accepted(self) -> None:
        if not self._answered.done():
            self._answered.set_result(None)

    def _on_dropped(self) -> None:
        self._on_accepted()

    def _resolve_task(self, task: executor_pb2.Task) -> None:
        self._task = task
        if self.done():
            return
        error = task_outcome(task)
        if error is None:
            self.set_result(from_value(task.result))
        else:
            self.set_exception(error)

    def _fail(self, error: BaseException) -> None:
        self._on_accepted()
        if not self.done():
            self.set_exception(error)


class Client:
    """A connection to a remex server, for asyncio. The methods match
    remex.Client's; the unary ones are coroutines, `submit` and `watch` are
    not (they queue the item and return its Future at once).

    Use it as `async with remex.aio.Client(...)`, or call `await close()`:
    futures still waiting then fail with RpcError CANCELLED (the tasks go
    on on the server).

    Args: as remex.Client's. `max_in_flight` bounds the submits and watches
    out at once (None: no bound); past it, `submit` still returns at once
    and the item waits in the client until a task ends (see
    `wait_for_room`). The default stays under the server's session window
    (100000), past which it would refuse submits with RESOURCE_EXHAUSTED.
    """

    def __init__(self, address: str, token: Optional[str] = None,
                 tls: TLSOption = None, *,
                 rpc_timeout: Optional[float] = 30.0,
                 max_batch_items: int = 4096,
                 max_batch_bytes: int = 4 << 20,
                 max_in_flight: Optional[int] = 50000,
                 channel_options: Any = ()) -> None:
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError("remex.aio: max_in_flight must be >= 1 or None")
        self.address = address
        self._channel = make_aio_channel(address, tls, channel_options)
        self._stub = executor_pb2_grpc.ExecutorStub(self._channel)
        # SessionRequests go out as the bytes SessionBook joins.
        self._open = self._channel.stream_stream(
            SESSION_METHOD, request_serializer=None,
            response_deserializer=executor_pb2.SessionResponse.FromString)
        self._metadata = metadata(token)
        self._rpc_timeout = rpc_timeout
        self._book = SessionBook(max_batch_items, max_batch_bytes)
        self._max_in_flight = max_in_flight
        # Futures held back by max_in_flight, in submit order.
        self._held: Deque[Future] = collections.deque()
        self._room = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._flushed = asyncio.Event()

    # ---- Submitting.

    def submit(self, function: str, args: JSON = None, *,
               input: Optional[bytes] = None,  # pylint: disable=redefined-builtin
               pool: Optional[str] = None, priority: int = 0,
               labels: Optional[Mapping[str, str]] = None,
               ttl: Optional[Duration] = None,
               queue_timeout: Optional[Duration] = None,
               run_timeout: Optional[Duration] = None,
               max_attempts: Optional[int] = None) -> Future:
        """Queues `function(args)` and returns its Future; the options are
        remex.Client.submit's. Call it from the client's event loop."""
        if (input is None and pool is None and not priority and
                labels is None and ttl is None and queue_timeout is None and
                run_timeout is None and max_attempts is None):
            options = DEFAULT_OPTIONS
        else:
            options = SubmitOptions(
                input=input, pool=pool, priority=priority, labels=labels,
                ttl=ttl, queue_timeout=queue_timeout, run_timeout=run_timeout,
                max_attempts=max_attempts)
        return self.submit_with(function, args, options)

    def submit_with(self, function: str, args: JSON,
                    options: SubmitOptions) -> Future:
        """submit() with its options as one SubmitOptions."""
        request = encode_submit(function, args, options)
        future = Future(self, function)
        self._book.prepare_submit(future, request)
        self._enqueue(future)
        return future

    def watch(self, task_id: str) -> Future:
        """A Future for a task submitted elsewhere."""
        future = Future(self, "")
        self._book.prepare_watch(future, task_id)
        self._enqueue(future)
        return future

    def in_flight(self) -> int:
        """The submits and watches out (queued or sent) and not yet ended,
        plus those held back by max_in_flight."""
        return len(self._book.futures) + len(self._held)

    async def wait_for_room(self) -> None:
        """Returns once fewer than max_in_flight submits and watches are
        out (at once if there is no bound): back-pressure for a producer
        that submits in a loop."""
        limit = self._max_in_flight
        while limit is not None and self.in_flight() >= limit:
            if self._book.closed:
                raise RuntimeError("remex: the client is closed")
            self._room.clear()
            await self._room.wait()

    def _enqueue(self, future: Future) -> None:
        book = self._book
        if book.closed:
            raise RuntimeError("remex: the client is closed")
        limit = self._max_in_flight
        if limit is not None and (self._held or len(book.futures) >= limit):
            future._held = True
            self._held.append(future)
            return
        book.enqueue(future)
        self._kick()

    def _admit_held(self) -> None:
        """Queues held-back futures while there is room."""
        book = self._book
        held = self._held
        limit = self._max_in_flight
        admitted = False
        while held and (limit is None or len(book.futures) < limit):
            future = held.popleft()
            if not future._held:
                continue  # Cancelled while held.
            future._held = False
            book.enqueue(future)
            admitted = True
        if admitted:
            self._kick()
        if limit is None or self.in_flight() < limit:
            self._room.set()

    def _cancel_future(self, future: Future) -> None:
        if future._held:
            future._held = False  # Never sent: _admit_held skips it.
            future._dropped = True
            future._on_dropped()
            return
        self._book.cancel(future)
        if self._book.pending:
            self._kick()

    # ---- The stream.

    def _kick(self) -> None:
        book = self._book
        if book.stream is None and not book.closed:
            stream = Stream()
            book.stream = stream
            stream.call = self._open(metadata=self._metadata)
            stream.worker = (asyncio.ensure_future(self._write(stream)),
                             asyncio.ensure_future(self._read(stream)))
        self._wakeup.set()

    async def _write(self, stream: Stream) -> None:
        book = self._book
        try:
            while True:
                while not book.pending and not stream.closing:
                    self._flushed.set()
                    self._wakeup.clear()
                    await self._wakeup.wait()
                if stream.closing:
                    return
                request = book.take_batch(stream)
                if request is not None:
                    await stream.call.write(request)
        except Exception:  # pylint: disable=broad-except
            return  # The call ended: the reader reports why.

    async def _read(self, stream: Stream) -> None:
        book = self._book
        error: Optional[BaseException] = None
        try:
            while True:
                response = await stream.call.read()
                if response is grpc.aio.EOF:
                    break
                stream.got_response = True
                failed, ended = book.apply(response)
                for future, rpc_error in failed:
                    future._fail(rpc_error)
                for future, task in ended:
                    future._resolve_task(task)
                if self._held or self._max_in_flight is not None:
                    self._admit_held()
                if book.pending:
                    self._wakeup.set()
                if not book.pending and not book.cancels:
                    self._flushed.set()
        except asyncio.CancelledError:
            # call.cancel() (close), or the event loop ending its tasks.
            error = RpcError(grpc.StatusCode.CANCELLED,
                             "the session was cancelled (client closed, or "
                             "its event loop stopped)")
        except Exception as e:  # pylint: disable=broad-except
            error = e  # grpc.RpcError, or a bug: fail the futures, not hang.
        failed, rpc_error = book.stream_ended(stream, error)
        self._wakeup.set()  # Stops this stream's writer.
        for future in failed:
            future._fail(rpc_error)
        self._admit_held()
        if book.pending:
            self._kick()

    # ---- Unary calls.

    async def _call(self, method: Any, request: Any,
                    timeout: Optional[float] = -1.0) -> Any:
        try:
            return await method(
                request, metadata=self._metadata,
                timeout=self._rpc_timeout if timeout == -1.0 else timeout)
        except grpc.RpcError as e:
            raise RpcError.from_grpc(e) from None

    async def get(self, task_id: str) -> executor_pb2.Task:
        return await self._call(self._stub.Get,
                                executor_pb2.GetRequest(id=task_id))

    async def cancel(self, task_id: str) -> executor_pb2.Task:
        return await self._call(self._stub.Cancel,
                                executor_pb2.CancelRequest(id=task_id))

    async def delete(self, task_id: str) -> None:
        await self._call(self._stub.Delete,
                         executor_pb2.DeleteRequest(id=task_id))

    async def await_task(self, task_id: str, timeout: Optional[float] = None
                         ) -> executor_pb2.Task:
        request = executor_pb2.AwaitRequest(id=task_id)
        if timeout is not None:
            request.timeout.FromMilliseconds(int(timeout * 1000))
        return await self._call(self._stub.Await, request, None)

    async def list(self, *, state: Optional[State] = None,
                   function: Optional[str] = None, pool: Optional[str] = None,
                   page_size: int = 0
                   ) -> AsyncIterator[executor_pb2.ListResponse]:
        """The tasks, oldest first, one ListResponse page at a time."""
        request = executor_pb2.ListRequest(
            state=int(state) if state is not None else 0,
            function=function or "", pool=pool or "", page_size=page_size)
        while True:
            page = await self._call(self._stub.List, request)
            yield page
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    async def functions(self) -> executor_pb2.ListFunctionsResponse:
        return await self._call(self._stub.ListFunctions,
                                executor_pb2.ListFunctionsRequest())

    # ---- Lifetime.

    async def close(self, flush_timeout: float = 5.0) -> None:
        """Sends what is queued and waits for the answers to cancels
        (within `flush_timeout` seconds), then ends the stream and the
        channel. Futures still waiting fail with RpcError CANCELLED."""
        book = self._book
        if book.closed:
            return
        if book.stream is not None and (book.pending or book.cancels):
            try:
                async def flushed() -> None:
                    while book.stream is not None and (book.pending or
                                                       book.cancels):
                        self._flushed.clear()
                        await self._flushed.wait()
                await asyncio.wait_for(flushed(), flush_timeout)
            except asyncio.TimeoutError:
                pass
        stream = book.stream
        unsent = book.close()
        while self._held:
            future = self._held.popleft()
            if future._held:
                future._held = False
                unsent.append(future)
        self._room.set()  # wait_for_room raises.
        error = RpcError(grpc.StatusCode.CANCELLED, "the client was closed")
        for future in unsent:
            future._fail(error)
        if stream is not None:
            stream.closing = True
            self._wakeup.set()
            stream.call.cancel()
            await asyncio.gather(*stream.worker, return_exceptions=True)
        await self._channel.close()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

