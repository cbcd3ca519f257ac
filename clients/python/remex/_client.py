"""remex.Client: submits over one Session stream, unary calls for the rest."""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Optional

import grpc

from remex._channel import TLSOption, make_channel, metadata
from remex._convert import (DEFAULT_OPTIONS, JSON, Duration, SubmitOptions,
                            encode_submit)
from remex._errors import RpcError, State
from remex._future import Future
from remex._session import Session
from remex.v1 import executor_pb2
from remex.v1 import executor_pb2_grpc

__all__ = ["Client"]


class Client:
    """A connection to a remex server.

    `submit` and `watch` go over one Session stream, opened on first use:
    submits from any number of threads are batched into few messages, and
    every future resolves from the stream, with no RPC of its own. `get`,
    `cancel`, `delete`, `list` and `functions` are unary calls.

    Args:
      address: "host:port" of the server.
      token: a bearer token (sent as `authorization: Bearer TOKEN`).
      tls: None (plaintext), True (TLS with the system's roots) or a
        remex.TLS (root CA, client certificate and key for mTLS).
      rpc_timeout: seconds a unary call may take (None: no limit).
      max_batch_items, max_batch_bytes: the most items and bytes of submits
        per SessionRequest.
      max_in_flight: the most submits and watches not yet ended: `submit`
        blocks while that many are (None: no bound). The default stays
        under the server's session window (100000), past which it refuses
        submits with RESOURCE_EXHAUSTED, so `Executor.map` over a long
        iterable goes at the server's pace instead of failing.
      channel_options: extra gRPC channel arguments.

    Thread-safe. Close it (or use it as a context manager) to end the
    stream: futures still waiting then fail with RpcError CANCELLED, while
    their tasks go on on the server. One left open is closed at
    interpreter exit.
    """

    def __init__(self, address: str, token: Optional[str] = None,
                 tls: TLSOption = None, *,
                 rpc_timeout: Optional[float] = 30.0,
                 max_batch_items: int = 4096,
                 max_batch_bytes: int = 4 << 20,
                 max_in_flight: Optional[int] = 50000,
                 channel_options: Any = ()) -> None:
        self.address = address
        self._channel = make_channel(address, tls, channel_options)
        self._stub = executor_pb2_grpc.ExecutorStub(self._channel)
        self._metadata = metadata(token)
        self._rpc_timeout = rpc_timeout
        self._session = Session(self, self._channel, self._metadata,
                                max_batch_items, max_batch_bytes,
                                max_in_flight)
        self._closed = False

    # ---- Submitting.

    def submit(self, function: str, args: JSON = None, *,
               input: Optional[bytes] = None,  # pylint: disable=redefined-builtin
               pool: Optional[str] = None, priority: int = 0,
               labels: Optional[Mapping[str, str]] = None,
               ttl: Optional[Duration] = None,
               queue_timeout: Optional[Duration] = None,
               run_timeout: Optional[Duration] = None,
               max_attempts: Optional[int] = None) -> Future:
        """Submits `function(args)` and returns its Future at once.

        Args:
          function: a registered function's name (see `functions()`).
          args: its arguments, a JSON value (dict, list, str, numbers, bool,
            None).
          input: bytes handed to the function (it gives bytes back as the
            future's `output()`).
          pool: the pool to run on; None: the function's default pool.
          priority: higher runs first; FIFO within a priority.
          labels: str -> str tags kept with the task.
          ttl: how long the finished task is kept (seconds or timedelta).
          queue_timeout, run_timeout: the longest wait before the task starts
            and the longest run; either ends it TIMED_OUT.
          max_attempts: runs allowed when a worker dies (default 1).

        The server's refusal (unknown function: NOT_FOUND, bad args, full
        queue) does not raise here: it comes as RpcError from the future.
        """
        if (input is None and pool is None and not priority and
                labels is None and ttl is None and queue_timeout is None and
                run_timeout is None and max_attempts is None):
            options = DEFAULT_OPTIONS  # Encoded once (no fields at all).
        else:
            options = SubmitOptions(
                input=input, pool=pool, priority=priority, labels=labels,
                ttl=ttl, queue_timeout=queue_timeout, run_timeout=run_timeout,
                max_attempts=max_attempts)
        return self.submit_with(function, args, options)

    def submit_with(self, function: str, args: JSON,
                    options: SubmitOptions) -> Future:
        """submit() with its options as one SubmitOptions (frozen: its
        fields are encoded on its first use and kept)."""
        request = encode_submit(function, args, options)
        future = Future(self._session, function)
        self._session.submit(future, request)
        return future

    def watch(self, task_id: str) -> Future:
        """A Future for a task submitted elsewhere (another client, an
        earlier session). An unknown id fails it with RpcError NOT_FOUND."""
        future = Future(self._session, "")
        self._session.watch(future, task_id)
        return future

    # ---- Unary calls.

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=self._rpc_timeout,
                          metadata=self._metadata)
        except grpc.RpcError as e:
            raise RpcError.from_grpc(e) from None

    def get(self, task_id: str) -> executor_pb2.Task:
        """The task as it stands (remex.v1.Task). Unknown: RpcError
        NOT_FOUND."""
        return self._call(self._stub.Get, executor_pb2.GetRequest(id=task_id))

    def cancel(self, task_id: str) -> executor_pb2.Task:
        """Cancels a queued or running task (a finished one is left as it
        is) and returns it: a queued task is CANCELLED at once, a running
        one when its function stops."""
        return self._call(self._stub.Cancel,
                          executor_pb2.CancelRequest(id=task_id))

    def delete(self, task_id: str) -> None:
        """Makes the server forget the task (cancelling it if running)."""
        self._call(self._stub.Delete, executor_pb2.DeleteRequest(id=task_id))

    def await_task(self, task_id: str,
                   timeout: Optional[float] = None) -> executor_pb2.Task:
        """Waits (a unary Await) up to `timeout` seconds for the task to end
        and returns it as it stands then."""
        request = executor_pb2.AwaitRequest(id=task_id)
        if timeout is not None:
            request.timeout.FromMilliseconds(int(timeout * 1000))
        try:
            return self._stub.Await(request, metadata=self._metadata)
        except grpc.RpcError as e:
            raise RpcError.from_grpc(e) from None

    def list(self, *, state: Optional[State] = None,
             function: Optional[str] = None, pool: Optional[str] = None,
             page_size: int = 0) -> Iterator[executor_pb2.ListResponse]:
        """The tasks, oldest first, one ListResponse page at a time (each
        with `tasks` and `trimmed_task_ids`): one List call per page, made
        when the iterator gets there. A page may hold fewer than
        `page_size` tasks (even none) while more follow."""
        request = executor_pb2.ListRequest(
            state=int(state) if state is not None else 0,
            function=function or "", pool=pool or "", page_size=page_size)
        while True:
            page = self._call(self._stub.List, request)
            yield page
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    def tasks(self, **filters: Any) -> Iterator[executor_pb2.Task]:
        """Every task of `list(**filters)`, page after page."""
        for page in self.list(**filters):
            yield from page.tasks

    def functions(self) -> executor_pb2.ListFunctionsResponse:
        """The registered functions (name, default_pool, description) and
        the pools (name, kind, workers, max_queue)."""
        return self._call(self._stub.ListFunctions,
                          executor_pb2.ListFunctionsRequest())

    # ---- Lifetime.

    def close(self) -> None:
        """Flushes queued cancels, ends the stream and the channel. Futures
        still waiting fail with RpcError CANCELLED; tasks go on."""
        if self._closed:
            return
        self._closed = True
        self._session.close()
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
