"""remex.Future: a concurrent.futures.Future for a task on the server."""

from __future__ import annotations

import concurrent.futures
import threading
from concurrent.futures import _base
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

from remex._convert import JSON, from_value
from remex._errors import State, TaskError
from remex.v1 import executor_pb2

if TYPE_CHECKING:
    from remex._session import Session

__all__ = ["Future"]

_SUCCEEDED = int(State.SUCCEEDED)
# Guards the making of a future's `_id_event` (rare: only `id` waits).
_ID_EVENT_LOCK = threading.Lock()
# Guards the making of a future's Condition, and the ends end_quietly
# writes into futures that have none (see Future._condition).
_CONDITION_LOCK = threading.Lock()
_PENDING = _base.PENDING
_UNSET = object()
_FINISHED = _base.FINISHED
_ENDED = frozenset((_base.FINISHED, _base.CANCELLED,
                    _base.CANCELLED_AND_NOTIFIED))


class Future(concurrent.futures.Future):
    """The future of one task submitted (or watched) through a Client.

    It is a real concurrent.futures.Future: `concurrent.futures.wait`,
    `as_completed`, `add_done_callback`, `done()` and `result(timeout)` work
    as for a local future. It resolves when the server reports the task's end
    on the client's Session stream (no RPC per future):

    - SUCCEEDED: `result()` returns the task's JSON result as Python values,
      `output()` its output bytes.
    - FAILED, CANCELLED, TIMED_OUT, WORKER_LOST: `result()` raises
      remex.TaskError (state, code, message, task).
    - The server refused the submit (unknown function: NOT_FOUND, bad args:
      INVALID_ARGUMENT, full queue or session window: RESOURCE_EXHAUSTED,
      ...) or the stream broke before the task's end could be known:
      `result()` raises remex.RpcError.

    `cancel()` asks the server to cancel the task (see cancel). `running()`
    is True from the server's acceptance of the task until its end (queued
    or running there: the stream does not report the start; `task` does).

    Thread-safe: any thread may wait on, cancel or inspect it.

    Why it differs inside from a plain concurrent.futures.Future: tens of
    thousands are made and resolved a second, and a Condition per future
    (with its lock, deque and bound methods, all for the garbage collector
    to scan) cost more than the rest of a submit. So the Condition is made
    on first use, under one lock shared by all futures: by a thread that
    waits, adds a callback, cancels, or passes the future to `wait` or
    `as_completed`. A future that nobody has touched that way is resolved
    by `end_quietly` under that same lock, by writing its state, result
    or exception as concurrent.futures would, with nobody to notify: the
    first thread to make its Condition afterwards sees it done. `done()`
    and `result()` of a done future read its state without a lock.

    Likewise the first thread to wait in `result()` on a future that has no
    Condition yet sleeps on a lock of its own (`_sleeper`, registered under
    that same lock), which whatever ends the future releases: a wait and a
    wakeup in C, none of a Condition's Python code on either side of a round
    trip. Any other waiter, callback, cancel, `wait` or `as_completed`
    makes the Condition as before; the sleeper is then still woken by
    set_result, set_exception and cancel.
    """

    # Set under the session's lock; class defaults, so that a future costs
    # only the attributes that change (tens of thousands are made a second).
    _seq: Optional[int] = None
    _frame: Optional[bytes] = None  # Its bytes in a SessionRequest.
    _stream: Optional[object] = None  # The stream it was sent on.
    _accepted = False
    _dropped = False  # Cancelled before it was sent: never sent.
    _cancel_wanted = False  # Cancel once the id comes.
    _id: Optional[str] = None
    _task: Optional[executor_pb2.Task] = None  # The terminal task.
    # Accepted, refused or dropped; `_id_event` is made only when a thread
    # waits for that in `id` (most futures never are).
    _answered = False
    _id_event: Optional[threading.Event] = None
    _cond: Optional[threading.Condition] = None  # See _condition.
    _sleeper: Any = None  # A held lock; see result(). Under _CONDITION_LOCK.
    # concurrent.futures.Future's fields, as its __init__ sets them, but as
    # class defaults; the lists come with the Condition (concurrent.futures
    # touches them only under it), so that a future nobody waits on is two
    # attributes. The tuples make a use without the Condition fail loudly.
    _state = _PENDING
    _value: Any = _UNSET  # See _result.
    _exception: Optional[BaseException] = None
    _waiters: Any = ()
    _done_callbacks: Any = ()

    def __init__(self, session: "Session", function: str) -> None:
        # pylint: disable=super-init-not-called
        self._session = session
        self._function = function

    @property  # type: ignore[override]
    def _condition(self) -> threading.Condition:
        """concurrent.futures.Future's Condition, made on first use."""
        cond = self._cond
        if cond is None:
            with _CONDITION_LOCK:
                cond = self._cond
                if cond is None:
                    cond = threading.Condition()
                    self._waiters = []
                    self._done_callbacks = []
                    self._cond = cond
        return cond

    @property  # type: ignore[override]
    def _result(self) -> Any:
        """concurrent.futures.Future's result field. end_quietly leaves
        it unset: it is made from the terminal task when first read (by
        result(), on the caller's thread, not the session's reader)."""
        value = self._value
        if value is _UNSET:
            task = self._task
            value = None if task is None else from_value(task.result)
            self._value = value
        return value

    @_result.setter
    def _result(self, value: Any) -> None:
        self._value = value

    def done(self) -> bool:
        return self._state in _ENDED

    @property
    def function(self) -> str:
        """The name of the task's function."""
        return self._function

    @property
    def id(self) -> str:
        """The task's id; waits for the server's answer to the submit.

        Raises remex.RpcError if the server refused it, and
        concurrent.futures.CancelledError if it was cancelled before it was
        sent (then no task was created).
        """
        if not self._answered:
            with _ID_EVENT_LOCK:
                if self._id_event is None:
                    self._id_event = threading.Event()
            # _mark_answered sets _answered before it reads _id_event, and
            # this reads _answered after _id_event is set: one of the two
            # sees the other, so no wakeup is missed.
            if not self._answered:
                self._id_event.wait()
        if self._id is None:
            if self._dropped:
                raise concurrent.futures.CancelledError()
            raise self.exception()  # type: ignore[misc]
        return self._id

    @property
    def task(self) -> executor_pb2.Task:
        """The whole task (remex.v1.Task): the terminal one once the server
        has reported its end, else the task as it stands now (a unary Get).
        """
        if self._task is not None:
            return self._task
        return self._session.client.get(self.id)

    def running(self) -> bool:
        """True from the server's acceptance of the task until its end."""
        return self._accepted and not self.done()

    def output(self, timeout: Optional[float] = None) -> bytes:
        """The output bytes of the task; waits and raises as result()."""
        self.result(timeout)
        assert self._task is not None
        return self._task.output

    def result(self, timeout: Optional[float] = None) -> JSON:
        """The task's JSON result as Python values (dict, list, str, int,
        float, bool, None). Raises concurrent.futures.TimeoutError if it has
        not ended within `timeout` seconds (the task goes on), TaskError if it
        did not succeed, RpcError if its end cannot be known, CancelledError
        if this future was cancelled."""
        if self._state is _FINISHED and self._exception is None:
            return self._result  # Done: no lock (see the class).
        if self._cond is None and self._state is _PENDING:
            if self._sleep(timeout):
                if self._state is _PENDING:
                    raise concurrent.futures.TimeoutError()
                timeout = 0  # It ended as the wait timed out.
            if self._state is _FINISHED and self._exception is None:
                return self._result
        return super().result(timeout)

    def _sleep(self, timeout: Optional[float]) -> bool:
        """Waits on a `_sleeper` (see the class) until the future ends or
        `timeout` passes; returns True if it timed out. Returns at once if
        the future has a Condition or a sleeper already (then the caller
        waits on the Condition)."""
        with _CONDITION_LOCK:
            if (self._cond is not None or self._state is not _PENDING or
                    self._sleeper is not None):
                return False
            sleeper = threading.Lock()
            sleeper.acquire()
            self._sleeper = sleeper
        # As threading.Condition.wait treats timeouts.
        if timeout is None:
            woken = sleeper.acquire()
        elif timeout > 0:
            woken = sleeper.acquire(True, timeout)
        else:
            woken = sleeper.acquire(False)
        if woken:
            return False
        with _CONDITION_LOCK:
            if self._sleeper is sleeper:
                self._sleeper = None  # Else it is being woken: no matter.
        return True

    def _wake_sleeper(self) -> None:
        if self._sleeper is None:
            return  # The common case, without the lock.
        with _CONDITION_LOCK:
            sleeper = self._sleeper
            self._sleeper = None
        if sleeper is not None:
            sleeper.release()

    def set_result(self, result: Any) -> None:
        super().set_result(result)
        self._wake_sleeper()

    def set_exception(self, exception: Optional[BaseException]) -> None:
        super().set_exception(exception)
        self._wake_sleeper()

    def cancel(self) -> bool:
        """Cancels the task on the server and this future at once.

        Returns False if the future is done already (the task ended, or the
        submit was refused). Otherwise sends a cancel to the server (or, if
        the submit has not left this process yet, drops it: no task is
        created), marks this future cancelled as concurrent.futures does,
        runs its callbacks, wakes `wait`/`as_completed`, and returns True:
        `result()` then raises concurrent.futures.CancelledError. The task
        itself ends CANCELLED on the server unless it ended otherwise
        first; `task` shows which once the server has reported it.
        """
        if self.done():
            return False
        self._session.cancel_future(self)
        cancelled = super().cancel()
        self._wake_sleeper()
        return cancelled

    def _mark_answered(self) -> None:
        self._answered = True
        event = self._id_event
        if event is not None:
            event.set()

    # SessionBook's hooks, under the session's lock.
    _on_accepted = _mark_answered
    _on_dropped = _mark_answered

    # Called by the session, never under its lock.
    def _resolve_task(self, task: executor_pb2.Task) -> None:
        self._task = task
        if not self._answered:
            self._mark_answered()  # An end always follows its acceptance.
        try:
            if task.state == _SUCCEEDED:
                self.set_result(from_value(task.result))
            else:
                self.set_exception(TaskError(task))
        except concurrent.futures.InvalidStateError:
            pass  # Cancelled here meanwhile; `task` shows the end.

    def _fail(self, error: BaseException) -> None:
        self._mark_answered()
        try:
            self.set_exception(error)
        except concurrent.futures.InvalidStateError:
            pass

    def __repr__(self) -> str:
        state = "done" if self.done() else (
            "accepted" if self._accepted else "pending")
        extra = ""
        if self._task is not None:
            extra = " " + State(self._task.state).name
        return (f"<remex.Future {self._function} id={self._id} "
                f"{state}{extra}>")


def end_quietly(ended: List[Tuple[Future, executor_pb2.Task]]
                ) -> List[Tuple[Future, executor_pb2.Task]]:
    """Ends the futures of `ended` that need no code of anyone's: writes the
    end of each future without a Condition (nobody waits on it, nor has
    callbacks) under _CONDITION_LOCK, in one pass, and wakes the thread
    sleeping in its result() (see Future). Returns the other futures with
    their tasks, to be resolved by `_resolve_task` (set_result or
    set_exception, which notify their waiters and run their callbacks) with
    no lock held. May be called under the session's lock (nothing takes
    that lock under this one), so that a waiter wakes as early as can be."""
    slow = []
    sleepers = []
    with _CONDITION_LOCK:
        for future, task in ended:
            future._task = task
            if (future._cond is not None or future._state is not _PENDING or
                    future._id_event is not None):
                slow.append((future, task))
                continue
            future._answered = True  # An end always follows its acceptance.
            if task.state != _SUCCEEDED:
                future._exception = TaskError(task)
            future._state = _FINISHED  # _result: from _task when read.
            sleeper = future._sleeper
            if sleeper is not None:
                future._sleeper = None
                sleepers.append(sleeper)
    for sleeper in sleepers:
        sleeper.release()
    return slow
