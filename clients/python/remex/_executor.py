"""remex.Executor: a concurrent.futures.Executor that runs on remex."""

from __future__ import annotations

import concurrent.futures
import dataclasses
from concurrent.futures import _base
import threading
from typing import Any, Iterable, Iterator, List, Optional, Set

from remex._channel import TLSOption
from remex._client import Client
from remex._convert import DEFAULT_OPTIONS, JSON, SubmitOptions
from remex._future import Future

__all__ = ["Executor"]

_OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(SubmitOptions))
_PRUNE_MIN = 4096
# concurrent.futures.Future's ended states: read without the future's lock
# (done() takes it), as a hint for pruning; shutdown waits with wait().
_ENDED = frozenset((_base.FINISHED, _base.CANCELLED,
                    _base.CANCELLED_AND_NOTIFIED))


class Executor(concurrent.futures.Executor):
    """A concurrent.futures.Executor whose "callables" are the names of
    functions registered on a remex server, and whose arguments are JSON
    values.

        with remex.Executor("localhost:50051") as ex:
            squares = list(ex.map("echo", [{"x": i} for i in range(10)]))

    Its futures are remex.Future (concurrent.futures.Future), so
    `concurrent.futures.wait` and `as_completed` work on them.

    Args:
      address: the server ("host:port"); or pass `client=` to share a
        Client (then shutdown does not close it).
      token, tls: as for remex.Client.
      **defaults: submit options applied to every task (pool, priority,
        labels, ttl, queue_timeout, run_timeout, max_attempts); a submit's
        own options override them.

    Thread-safe.
    """

    def __init__(self, address: Optional[str] = None, *,
                 client: Optional[Client] = None, token: Optional[str] = None,
                 tls: TLSOption = None, **defaults: Any) -> None:
        unknown = set(defaults) - _OPTION_NAMES
        if unknown:
            raise TypeError(f"remex.Executor: unknown options {sorted(unknown)}")
        if (address is None) == (client is None):
            raise TypeError("remex.Executor: give an address or a client")
        self._owns_client = client is None
        self._client = client if client is not None else Client(
            address, token=token, tls=tls)  # type: ignore[arg-type]
        self._defaults = (SubmitOptions(**defaults) if defaults
                          else DEFAULT_OPTIONS)
        self._lock = threading.Lock()
        # The futures submitted, done ones among them until the set is
        # pruned (when it has doubled since the last pruning): tracking
        # costs no done-callback, and no lock on the reader thread, per task.
        self._futures: Set[Future] = set()  # Guarded by _lock.
        self._prune_at = _PRUNE_MIN  # Guarded by _lock.
        self._shutdown = False  # Guarded by _lock.
        self._submitting = 0  # Submits under way. Guarded by _lock.
        self._all_submitted = threading.Condition(self._lock)
        # After shutdown(wait=False) of an owned client: the futures left to
        # end before it is closed, else None. Guarded by _lock.
        self._close_after: Optional[int] = None

    @property
    def client(self) -> Client:
        return self._client

    def submit(self, function: str, args: JSON = None,  # type: ignore[override]
               /, **options: Any) -> Future:
        """Submits `function(args)`; `options` as for Client.submit."""
        if options:
            unknown = set(options) - _OPTION_NAMES
            if unknown:
                raise TypeError(f"remex.Executor.submit: unknown options "
                                f"{sorted(unknown)}")
            merged = dataclasses.replace(self._defaults, **options)
        else:
            merged = self._defaults
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._submitting += 1
        # Not under _lock: submit may wait for room (max_in_flight).
        try:
            future = self._client.submit_with(function, args, merged)
        except BaseException:
            self._submitted(None)
            raise
        with self._lock:
            if not self._shutdown:
                self._submitting -= 1
                futures = self._futures
                futures.add(future)
                if len(futures) >= self._prune_at:
                    futures = {f for f in futures if f._state not in _ENDED}
                    self._futures = futures
                    self._prune_at = max(_PRUNE_MIN, 2 * len(futures))
                return future
        self._submitted(future)
        return future

    def _submitted(self, future: Optional[Future]) -> None:
        """The end of a submit that failed or met a shutdown."""
        with self._lock:
            self._submitting -= 1
            if future is not None:
                self._futures.add(future)
            if self._shutdown:
                self._all_submitted.notify_all()
            watch = future is not None and self._close_after is not None
            if watch:
                self._close_after += 1  # type: ignore[operator]
        if watch:
            future.add_done_callback(  # type: ignore[union-attr]
                self._one_done)
        elif self._shutdown:
            self._close_if_all_done()

    def _pending_locked(self) -> List[Future]:
        self._futures = {f for f in self._futures if f._state not in _ENDED}
        return list(self._futures)

    def _one_done(self, future: concurrent.futures.Future) -> None:
        del future
        with self._lock:
            self._close_after -= 1  # type: ignore[operator]
        self._close_if_all_done()

    def _close_if_all_done(self) -> None:
        with self._lock:
            close = self._close_after == 0 and not self._submitting
            if close:
                self._close_after = -1  # Closed once.
        if close:
            # On its own thread: this may run on the session's reader.
            threading.Thread(target=self._client.close, daemon=True).start()

    def map(self, function: str, iterable: Iterable[JSON],  # type: ignore[override]
            *, timeout: Optional[float] = None, chunksize: int = 1
            ) -> Iterator[JSON]:
        """`function(args)` for every args of `iterable`, the results in
        the iterable's order. Every task is submitted before map returns (as
        concurrent.futures does; past the client's max_in_flight it waits
        for room). A task that fails raises its TaskError (a refused one its
        RpcError) when its result is reached, and the tasks after it are
        cancelled; `timeout` (seconds from this call) raises
        concurrent.futures.TimeoutError."""
        del chunksize  # Batching is the session's.
        return super().map(function, iterable, timeout=timeout)

    def shutdown(self, wait: bool = True, *,
                 cancel_futures: bool = False) -> None:
        """No more submits. `cancel_futures` cancels the tasks not yet done
        (on the server as well); `wait` waits for every future. The client
        (unless it was given) is closed once every future is done: here, or
        with wait=False when the last pending one ends."""
        with self._lock:
            self._shutdown = True
            pending = self._pending_locked()
        if cancel_futures:
            for future in pending:
                future.cancel()
        if wait:
            with self._lock:
                while self._submitting:
                    self._all_submitted.wait()
                pending = self._pending_locked()
            concurrent.futures.wait(pending)
            if self._owns_client:
                self._client.close()
            return
        if not self._owns_client:
            return
        with self._lock:
            if self._close_after is not None:
                return  # Shut down before.
            pending = self._pending_locked()
            self._close_after = len(pending)
        for future in pending:
            future.add_done_callback(self._one_done)
        self._close_if_all_done()
