"""remex: the Python client of the remex remote executor.

    import remex

    with remex.Client("localhost:50051") as client:
        future = client.submit("echo", {"x": 1})
        print(future.result(timeout=10))       # {'x': 1}

- remex.Client: submit (-> remex.Future), watch, get, cancel, delete, list,
  functions; submits go over one Session stream.
- remex.Future: a concurrent.futures.Future of one task.
- remex.Executor: a concurrent.futures.Executor (submit, map, shutdown).
- remex.aio: the same over asyncio.
- remex.TaskError: a task ended FAILED, CANCELLED, TIMED_OUT or WORKER_LOST.
- remex.RpcError: the server refused a call, or the transport failed.
"""

from remex._channel import TLS
from remex._client import Client
from remex._convert import SubmitOptions, from_value, to_value
from remex._errors import Error, RpcError, State, TaskError
from remex._executor import Executor
from remex._future import Future
from remex.v1.executor_pb2 import Task

__all__ = [
    "Client", "Error", "Executor", "Future", "RpcError", "State",
    "SubmitOptions", "TLS", "Task", "TaskError", "aio", "from_value",
    "to_value",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    # remex.aio imports grpc.aio: only when asked for.
    if name == "aio":
        import importlib  # pylint: disable=import-outside-toplevel
        return importlib.import_module("remex.aio")
    raise AttributeError(f"module 'remex' has no attribute {name!r}")
