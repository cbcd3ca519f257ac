"""The exceptions and the State enum of the remex client."""

from __future__ import annotations

import enum
from typing import Optional

import grpc

from remex.v1 import executor_pb2

__all__ = ["Error", "RpcError", "State", "TaskError", "TERMINAL_STATES"]


class State(enum.IntEnum):
    """A task's lifecycle state (remex.v1.State)."""

    STATE_UNSPECIFIED = 0
    QUEUED = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5
    TIMED_OUT = 6
    WORKER_LOST = 7

    @property
    def terminal(self) -> bool:
        """Whether the task has ended (every accepted task reaches one)."""
        return self >= State.SUCCEEDED


TERMINAL_STATES = frozenset(s for s in State if s.terminal)

_CODES = {code.value[0]: code for code in grpc.StatusCode}


def status_code(number: int) -> grpc.StatusCode:
    """The grpc.StatusCode of a google.rpc code number (UNKNOWN if none)."""
    return _CODES.get(number, grpc.StatusCode.UNKNOWN)


class Error(Exception):
    """Base class of the exceptions raised by remex."""


class RpcError(Error):
    """A call failed before it had a task to report: a transport failure, or
    a request the server refused (unknown function, bad args, full queue,
    no credentials, ...).

    Attributes:
      code: the grpc.StatusCode (e.g. NOT_FOUND, UNAVAILABLE).
      message: the server's (or gRPC's) explanation.
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    @classmethod
    def from_grpc(cls, error: grpc.RpcError) -> "RpcError":
        """Wraps a grpc.RpcError (which is also a grpc.Call)."""
        code = getattr(error, "code", None)
        details = getattr(error, "details", None)
        return cls(code() if callable(code) else grpc.StatusCode.UNKNOWN,
                   (details() if callable(details) else None) or str(error))


class TaskError(Error):
    """A task that ended FAILED, CANCELLED, TIMED_OUT or WORKER_LOST.

    Attributes:
      state: the terminal State.
      code: the grpc.StatusCode of Task.error (e.g. DEADLINE_EXCEEDED).
      message: Task.error.message.
      task: the whole terminal remex.v1.Task.
    """

    def __init__(self, task: executor_pb2.Task) -> None:
        self.task = task
        self.state = State(task.state)
        self.code = status_code(task.error.code)
        self.message = task.error.message
        super().__init__(
            f"task {task.id} ({task.function}) ended {self.state.name}: "
            f"{self.code.name}: {self.message}")

    @property
    def task_id(self) -> str:
        return self.task.id


def task_outcome(task: executor_pb2.Task) -> Optional[TaskError]:
    """None if the task SUCCEEDED, else its TaskError."""
    return None if task.state == State.SUCCEEDED else TaskError(task)
