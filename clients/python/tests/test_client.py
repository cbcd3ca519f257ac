"""remex.Client and remex.Future against a real remex-server."""

from __future__ import annotations

import concurrent.futures
import gc
import subprocess
import sys
import textwrap
import threading
import weakref

import grpc
import pytest

import remex
from conftest import wait_for
from remex.v1 import executor_pb2  # pylint: disable=wrong-import-order

ARGS = {
    "text": "héllo ✓", "int": 42, "negative": -7, "float": 2.5,
    "big": 2**53, "true": True, "false": False, "none": None,
    "list": [1, "two", [3.5, None], {"k": "v"}], "empty": {}, "nil": [],
}


def test_echo_round_trips_args_and_bytes(client: remex.Client) -> None:
    payload = bytes(range(256)) * 10
    future = client.submit("echo", ARGS, input=payload)
    assert future.result(timeout=10) == ARGS
    assert future.output() == payload
    assert isinstance(future.result()["int"], int)
    assert isinstance(future.result()["float"], float)
    task = future.task
    assert task.id == future.id and len(future.id) == 21
    assert remex.State(task.state) is remex.State.SUCCEEDED
    assert task.function == "echo"
    assert future.done() and not future.running() and not future.cancelled()


@pytest.mark.parametrize("args", [None, "a string", 3, 1.25, True, [1, 2]])
def test_echo_of_scalars_and_lists(client: remex.Client, args) -> None:
    assert client.submit("echo", args).result(timeout=10) == args


def test_args_that_are_no_json_raise_at_submit(client: remex.Client) -> None:
    with pytest.raises(TypeError):
        client.submit("echo", {1, 2})
    with pytest.raises(TypeError):
        client.submit("echo", {1: "int key"})
    with pytest.raises(TypeError):
        client.submit("echo", b"bytes go in input=")
    with pytest.raises(ValueError):
        client.submit("echo", float("nan"))


def test_fail_raises_task_error_with_message(client: remex.Client) -> None:
    future = client.submit("fail", {"message": "it broke"})
    with pytest.raises(remex.TaskError) as caught:
        future.result(timeout=10)
    error = caught.value
    assert error.state is remex.State.FAILED
    assert error.message == "it broke"
    assert error.code != grpc.StatusCode.OK
    assert error.task.id == future.id
    assert future.exception() is error
    assert "it broke" in str(error)


def test_unknown_function_fails_the_future_with_not_found(
        client: remex.Client) -> None:
    # Documented choice: submit never waits for the server, so a refusal
    # comes from the future (and from `id`), not from submit().
    future = client.submit("no_such_function")
    with pytest.raises(remex.RpcError) as caught:
        future.result(timeout=10)
    assert caught.value.code is grpc.StatusCode.NOT_FOUND
    assert "no_such_function" in caught.value.message
    with pytest.raises(remex.RpcError):
        future.id  # pylint: disable=pointless-statement


def test_result_timeout_raises_timeout_error(client: remex.Client) -> None:
    future = client.submit("sleep", {"ms": 60000})
    with pytest.raises(concurrent.futures.TimeoutError):
        future.result(timeout=0.2)
    assert future.running()  # The task goes on, accepted by the server.
    assert not future.done()
    client.cancel(future.id)
    with pytest.raises(remex.TaskError):
        future.result(timeout=10)


def _sleeping_in_result(future: remex.Future) -> threading.Thread:
    """A thread waiting in future.result(), once it sleeps on the future's
    own lock (see remex.Future); its outcome lands in `thread.outcome`."""
    def wait() -> None:
        try:
            thread.outcome = ("result", future.result(timeout=30))
        except BaseException as e:  # pylint: disable=broad-except
            thread.outcome = ("raised", e)

    thread = threading.Thread(target=wait)
    thread.outcome = None
    thread.start()
    # pylint: disable-next=protected-access
    wait_for(lambda: future._sleeper is not None, what="result() to sleep")
    return thread


def test_result_sleeping_wakes_on_cancel(client: remex.Client) -> None:
    future = client.submit("sleep", {"ms": 60000})
    future.id  # pylint: disable=pointless-statement
    sleeping = _sleeping_in_result(future)
    assert future.cancel()
    sleeping.join(10)
    assert not sleeping.is_alive()
    kind, error = sleeping.outcome
    assert kind == "raised"
    assert isinstance(error, concurrent.futures.CancelledError)


def test_result_sleeping_beside_wait_and_callbacks(
        client: remex.Client) -> None:
    # One thread sleeps in result(); then a second result(), wait(),
    # as_completed() and a callback use the future's Condition: the end
    # wakes all of them.
    future = client.submit("sleep", {"ms": 300})
    sleeping = _sleeping_in_result(future)
    others = []
    second = threading.Thread(target=lambda: others.append(
        future.result(timeout=30)))
    waiter = threading.Thread(target=lambda: others.append(
        concurrent.futures.wait([future], timeout=30)))
    completer = threading.Thread(target=lambda: others.append(
        list(concurrent.futures.as_completed([future], timeout=30))))
    called = threading.Event()
    future.add_done_callback(lambda f: called.set())
    for thread in (second, waiter, completer):
        thread.start()
    for thread in (sleeping, second, waiter, completer):
        thread.join(30)
        assert not thread.is_alive()
    assert sleeping.outcome == ("result", {"slept_ms": 300})
    assert called.is_set()
    assert {"slept_ms": 300} in others
    waited = [o for o in others if isinstance(o, tuple)]
    assert [w.done for w in waited] == [{future}]
    assert [future] in others  # as_completed's.
    assert future._sleeper is None  # pylint: disable=protected-access


def test_result_times_out_then_sleeps_again(client: remex.Client) -> None:
    future = client.submit("sleep", {"ms": 500})
    with pytest.raises(concurrent.futures.TimeoutError):
        future.result(timeout=0.05)
    with pytest.raises(concurrent.futures.TimeoutError):
        future.result(timeout=0)
    assert future._cond is None  # pylint: disable=protected-access
    assert future.result(timeout=30) == {"slept_ms": 500}


def test_cancel_by_id_ends_the_future_cancelled(client: remex.Client) -> None:
    future = client.submit("sleep", {"ms": 60000})
    task = client.cancel(future.id)
    assert task.cancel_requested
    with pytest.raises(remex.TaskError) as caught:
        future.result(timeout=10)
    assert caught.value.state is remex.State.CANCELLED
    assert caught.value.code is grpc.StatusCode.CANCELLED


def test_future_cancel_cancels_on_the_server(client: remex.Client) -> None:
    future = client.submit("sleep", {"ms": 60000})
    task_id = future.id
    assert future.cancel()
    assert future.cancelled() and future.done()
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(timeout=0)
    ended = client.await_task(task_id, timeout=10)
    assert remex.State(ended.state) is remex.State.CANCELLED
    # The server's end still reaches the future's task.
    wait_for(lambda: future._task is not None, what="the reported end")
    assert remex.State(future.task.state) is remex.State.CANCELLED
    assert not future.cancel() or future.cancelled()


def test_cancel_of_a_done_future_returns_false(client: remex.Client) -> None:
    future = client.submit("echo", 1)
    future.result(timeout=10)
    assert not future.cancel()
    assert not future.cancelled()


def test_done_callbacks_run_once(client: remex.Client) -> None:
    seen = []
    ended = threading.Event()

    def callback(future: concurrent.futures.Future) -> None:
        seen.append(future.result())
        ended.set()

    client.submit("echo", "called").add_done_callback(callback)
    assert ended.wait(10)
    assert seen == ["called"]


def test_run_timeout_ends_timed_out(client: remex.Client) -> None:
    future = client.submit("sleep", {"ms": 60000}, run_timeout=0.2)
    with pytest.raises(remex.TaskError) as caught:
        future.result(timeout=10)
    assert caught.value.state is remex.State.TIMED_OUT


def test_submit_options_reach_the_task(client: remex.Client) -> None:
    future = client.submit("echo", {}, priority=7, labels={"team": "a"},
                           ttl=600, max_attempts=3, pool="default",
                           queue_timeout=30)
    future.result(timeout=10)
    task = future.task
    assert task.priority == 7
    assert dict(task.labels) == {"team": "a"}
    assert task.max_attempts == 3
    assert task.pool == "default"


def test_get_delete_and_not_found(client: remex.Client) -> None:
    future = client.submit("echo", {"keep": 1})
    future.result(timeout=10)
    assert client.get(future.id).id == future.id
    client.delete(future.id)
    with pytest.raises(remex.RpcError) as caught:
        client.get(future.id)
    assert caught.value.code is grpc.StatusCode.NOT_FOUND


def test_list_pages_oldest_first(client: remex.Client) -> None:
    mine = [client.submit("echo", {"list": i}) for i in range(25)]
    for future in mine:
        future.result(timeout=10)
    ids = [future.id for future in mine]
    pages = list(client.list(function="echo", page_size=10))
    assert len(pages) >= 3
    assert all(len(page.tasks) <= 10 for page in pages)
    listed = [t.id for page in pages for t in page.tasks]
    assert [i for i in listed if i in set(ids)] == ids
    succeeded = {t.id for t in client.tasks(state=remex.State.SUCCEEDED,
                                             function="echo")}
    assert set(ids) <= succeeded
    failed = {t.id for t in client.tasks(state=remex.State.FAILED)}
    assert not set(ids) & failed


def test_functions_lists_builtins_and_pools(client: remex.Client) -> None:
    answer = client.functions()
    names = {f.name for f in answer.functions}
    assert {"echo", "sleep", "fail", "sha256", "crash"} <= names
    assert answer.pools and all(p.workers > 0 for p in answer.pools)


def test_watch_from_another_client(client: remex.Client,
                                   address: str) -> None:
    future = client.submit("sleep", {"ms": 50})
    with remex.Client(address) as other:
        watched = other.watch(future.id)
        assert watched.result(timeout=10) == future.result(timeout=10)
        assert watched.task.id == future.id
        with pytest.raises(remex.RpcError) as caught:
            other.watch("not-a-task-id").result(timeout=10)
        assert caught.value.code is grpc.StatusCode.NOT_FOUND


def test_wait_and_as_completed_over_1000_futures(
        client: remex.Client) -> None:
    futures = [client.submit("echo", i) for i in range(1000)]
    done, not_done = concurrent.futures.wait(futures, timeout=60)
    assert len(done) == 1000 and not not_done
    results = [f.result() for f in concurrent.futures.as_completed(
        [client.submit("echo", i) for i in range(1000)], timeout=60)]
    assert sorted(results) == list(range(1000))
    assert [f.result() for f in futures] == list(range(1000))


def test_first_completed(client: remex.Client) -> None:
    slow = client.submit("sleep", {"ms": 60000})
    fast = client.submit("echo", "fast")
    done, not_done = concurrent.futures.wait(
        [slow, fast], timeout=10,
        return_when=concurrent.futures.FIRST_COMPLETED)
    assert done == {fast} and not_done == {slow}
    assert slow.cancel()


def test_many_threads_share_one_stream(client: remex.Client,
                                       monkeypatch: pytest.MonkeyPatch
                                       ) -> None:
    from remex import _book  # pylint: disable=import-outside-toplevel
    batches = []
    take_batch = _book.SessionBook.take_batch

    def counting(self, stream):
        request = take_batch(self, stream)  # A serialized SessionRequest.
        if request is not None:
            batches.append(len(
                executor_pb2.SessionRequest.FromString(request).submits))
        return request

    monkeypatch.setattr(_book.SessionBook, "take_batch", counting)
    futures = [[] for _ in range(8)]

    def submit_some(mine: list, base: int) -> None:
        mine.extend(client.submit("echo", base + i) for i in range(500))

    threads = [threading.Thread(target=submit_some, args=(futures[n], n * 500))
               for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flat = [f for mine in futures for f in mine]
    assert [f.result(timeout=60) for f in flat] == list(range(4000))
    assert sum(batches) == 4000
    # Thousands of submits, few messages (typically tens).
    assert len(batches) < 4000 / 4, batches


def test_close_fails_waiting_futures_but_tasks_go_on(address: str) -> None:
    client = remex.Client(address)
    future = client.submit("sleep", {"ms": 60000})
    task_id = future.id
    client.close()
    with pytest.raises(remex.RpcError) as caught:
        future.result(timeout=10)
    assert caught.value.code is grpc.StatusCode.CANCELLED
    with pytest.raises(RuntimeError):
        client.submit("echo")
    with remex.Client(address) as other:
        assert remex.State(other.get(task_id).state) in (
            remex.State.QUEUED, remex.State.RUNNING)
        other.cancel(task_id)


def test_close_frees_the_call_without_the_collector(address: str) -> None:
    # A call left to the cyclic collector may be freed at interpreter exit,
    # where its __del__ can hang (see _open_sessions): close() must free it.
    gc.disable()
    try:
        client = remex.Client(address)
        future = client.submit("sleep", {"ms": 60000})
        assert future.cancel()
        call = weakref.ref(client._session._book.stream.call)  # pylint: disable=protected-access
        client.close()
        assert call() is None
    finally:
        gc.enable()


def test_a_client_left_open_is_closed_at_exit(address: str) -> None:
    # The script's own exit hook, registered before remex's, runs after it.
    script = textwrap.dedent("""
        import atexit, sys

        def report():
            error = future.exception(timeout=10)
            print(type(error).__name__, error.code.name, flush=True)
            open_ = remex.Client(sys.argv[1])  # Ends the 60 s task.
            open_.cancel(task_id)
            open_.close()

        atexit.register(report)
        import remex
        client = remex.Client(sys.argv[1])
        future = client.submit("sleep", {"ms": 60000})
        task_id = future.id
    """)
    completed = subprocess.run([sys.executable, "-c", script, address],
                               capture_output=True, text=True, timeout=60,
                               check=False)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "RpcError CANCELLED", completed.stderr


def test_server_killed_fails_futures_with_rpc_error(start_server) -> None:
    server = start_server()
    with remex.Client(server.address) as client:
        future = client.submit("sleep", {"ms": 60000})
        future.id  # pylint: disable=pointless-statement
        server.kill()
        with pytest.raises(remex.RpcError) as caught:
            future.result(timeout=30)
        assert caught.value.code is grpc.StatusCode.UNAVAILABLE


def test_server_drain_cancels_running_tasks(start_server) -> None:
    server = start_server("--shutdown-grace", "100ms")
    with remex.Client(server.address) as client:
        future = client.submit("sleep", {"ms": 60000})
        future.id  # pylint: disable=pointless-statement
        server.stop()  # SIGTERM: the drain reports the ends first.
        with pytest.raises(remex.TaskError) as caught:
            future.result(timeout=30)
        assert caught.value.state is remex.State.CANCELLED


def test_unreachable_server_fails_futures(server_binary: str) -> None:
    del server_binary
    with remex.Client("127.0.0.1:1") as client:
        with pytest.raises(remex.RpcError) as caught:
            client.submit("echo", 1).result(timeout=30)
        assert caught.value.code is grpc.StatusCode.UNAVAILABLE
        with pytest.raises(remex.RpcError):
            client.functions()


def test_max_in_flight_blocks_submit_instead_of_failing(address: str) -> None:
    with remex.Client(address, max_in_flight=50) as client:
        peak = []
        futures = []
        for i in range(2000):
            futures.append(client.submit("echo", i))
            peak.append(sum(1 for f in futures[-60:] if not f.done()))
        assert [f.result(timeout=60) for f in futures] == list(range(2000))
        assert max(peak) <= 50
        with remex.Executor(client=client) as executor:
            assert list(executor.map("echo", range(1000))) == list(range(1000))


def test_broken_stream_rewatches_accepted_tasks(client: remex.Client) -> None:
    future = client.submit("sleep", {"ms": 300})
    future.id  # pylint: disable=pointless-statement
    first = client._session._book.stream  # pylint: disable=protected-access
    first.call.cancel()  # As if the connection broke, the server up.
    # The task outlives the session: a new stream watches it to its end.
    assert future.result(timeout=10) == {"slept_ms": 300}
    assert client._session._book.stream is not first  # pylint: disable=protected-access
    assert client.submit("echo", "after").result(timeout=10) == "after"


def test_done_callback_may_submit(address: str) -> None:
    with remex.Client(address, max_in_flight=1) as client:
        chained = concurrent.futures.Future()

        def then(future: concurrent.futures.Future) -> None:
            # On the session's reader thread, at the in-flight bound.
            second = client.submit("echo", future.result() + 1)
            second.add_done_callback(
                lambda f: chained.set_result(f.result()))

        client.submit("echo", 1).add_done_callback(then)
        assert chained.result(timeout=10) == 2


def test_futures_nobody_waited_on_resolve_like_any(address: str) -> None:
    # Futures nobody touches until their tasks end are resolved without a
    # Condition (see remex.Future); everything concurrent.futures offers
    # must still work on them afterwards.
    with remex.Client(address) as client:
        good = [client.submit("echo", {"i": i}) for i in range(300)]
        bad = client.submit("fail", {"message": "untouched"})
        book = client._session._book  # pylint: disable=protected-access
        wait_for(lambda: not book.futures, what="every task to end")
        assert all(f._cond is None for f in good + [bad])  # pylint: disable=protected-access
        assert all(f.done() and not f.running() for f in good + [bad])
        assert [f.result(timeout=0) for f in good] == [
            {"i": i} for i in range(300)]
        assert good[0].result() is good[0].result()
        assert good[5].exception(timeout=0) is None
        assert isinstance(bad.exception(timeout=0), remex.TaskError)
        with pytest.raises(remex.TaskError) as caught:
            bad.result(timeout=0)
        assert caught.value.message == "untouched"
        assert not bad.cancel() and not good[1].cancel()
        seen = []
        good[2].add_done_callback(seen.append)  # Runs at once: done.
        assert seen == [good[2]]
        done, not_done = concurrent.futures.wait(good + [bad], timeout=0)
        assert len(done) == 301 and not not_done
        assert len(list(concurrent.futures.as_completed(good, timeout=0))) == 300
        assert good[3].id == good[3].task.id and good[3].task.function == "echo"


def test_waiters_made_while_the_reader_resolves(address: str) -> None:
    # Threads wait on (and add callbacks to) futures while the reader
    # resolves others in the same responses: no wakeup is lost.
    with remex.Client(address) as client:
        for _ in range(5):
            futures = [client.submit("echo", i) for i in range(2000)]
            results = [None] * len(futures)
            called = []

            def wait_some(start: int) -> None:
                for k in range(start, len(futures), 4):
                    results[k] = futures[k].result(timeout=60)

            for future in futures[::7]:
                future.add_done_callback(called.append)
            threads = [threading.Thread(target=wait_some, args=(s,))
                       for s in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert results == list(range(2000))
            assert len(called) == len(futures[::7])


def test_id_waits_for_the_answer(client: remex.Client) -> None:
    futures = [client.submit("echo", i) for i in range(200)]
    ids = [f.id for f in futures]  # Made to wait in turn as answers come.
    assert len(set(ids)) == 200 and all(len(i) == 21 for i in ids)
    refused = client.submit("no-such-function")
    with pytest.raises(remex.RpcError):
        refused.id  # pylint: disable=pointless-statement
