#!/usr/bin/env python3
"""A Celery `delay()` call, translated to remex.

Celery:

    @app.task(time_limit=60)
    def digest(text): ...

    result = digest.delay("hello")               # AsyncResult
    result.id; result.ready()
    value = result.get(timeout=10)
    digest.apply_async(("hello",), queue="cpu", priority=5, expires=30)
    AsyncResult(task_id).get()
    result.revoke(terminate=True)

remex: the function is registered on the server (built-in, plugin or
command function) and called by name with JSON arguments. `RemoteTask` below
gives it Celery's shape; its future is a concurrent.futures.Future.

    Celery                           remex
    task.delay(args)                 client.submit(name, args)
    apply_async(queue=, priority=)   submit(..., pool=, priority=)
    apply_async(expires=)            submit(..., queue_timeout=)
    time_limit                       submit(..., run_timeout=)
    AsyncResult.get(timeout)         Future.result(timeout)
    AsyncResult.ready() / .id        Future.done() / .id
    AsyncResult(task_id)             client.watch(task_id)
    revoke(terminate=True)           Future.cancel() / client.cancel(id)
    result backend                   the server keeps tasks for ttl=

Usage: celery_delay.py [HOST:PORT]   (default localhost:50051)
"""

import sys
from typing import Any

import remex


class RemoteTask:
    """A server function with Celery's calling conventions."""

    def __init__(self, client: remex.Client, name: str,
                 **options: Any) -> None:
        self.client = client
        self.name = name
        self.options = options  # e.g. run_timeout=60 (Celery's time_limit)

    def delay(self, args: Any = None) -> remex.Future:
        return self.client.submit(self.name, args, **self.options)

    def apply_async(self, args: Any = None, **options: Any) -> remex.Future:
        return self.client.submit(self.name, args, **{**self.options,
                                                      **options})


def main() -> None:
    address = sys.argv[1] if len(sys.argv) > 1 else "localhost:50051"
    with remex.Client(address) as client:
        digest = RemoteTask(client, "sha256", run_timeout=60)

        result = digest.delay({"text": "hello"})
        print("id:", result.id, "ready:", result.done())
        print("digest:", result.result(timeout=10))  # result.get(timeout)

        later = digest.apply_async({"text": "later"}, priority=5,
                                   queue_timeout=30)
        again = client.watch(later.id)  # Celery's AsyncResult(task_id)
        print("watched:", again.result(timeout=10) == later.result(10))

        slow = RemoteTask(client, "sleep").delay({"ms": 60000})
        slow.id  # Wait until the server has it, then revoke it.
        print("revoked:", slow.cancel())


if __name__ == "__main__":
    main()
