"""remex.Executor as a concurrent.futures.Executor."""

from __future__ import annotations

import concurrent.futures

import pytest

import remex
from conftest import wait_for


def run_squares(executor: concurrent.futures.Executor, function,
                n: int) -> list:
    """Code written against concurrent.futures.Executor, whatever it is."""
    futures = [executor.submit(function, i) for i in range(n)]
    return [f.result() for f in futures]


def test_is_a_concurrent_futures_executor(address: str) -> None:
    with remex.Executor(address) as executor:
        assert isinstance(executor, concurrent.futures.Executor)
        future = executor.submit("echo", {"x": 1})
        assert isinstance(future, concurrent.futures.Future)
        assert future.result(timeout=10) == {"x": 1}
        assert run_squares(executor, "echo", 50) == list(range(50))


def test_map_keeps_order(address: str) -> None:
    with remex.Executor(address) as executor:
        args = [{"ms": (7 - i % 7) * 3} for i in range(50)]
        assert list(executor.map("sleep", args, timeout=60)) == [
            {"slept_ms": a["ms"]} for a in args]
        assert list(executor.map("echo", range(500))) == list(range(500))


def test_map_raises_at_the_failed_item(address: str) -> None:
    with remex.Executor(address) as executor:
        results = executor.map("sleep", [{"ms": 1}, {"ms": "bad"}, {"ms": 1}])
        assert next(results) == {"slept_ms": 1}
        with pytest.raises(remex.RpcError) as caught:
            next(results)  # Refused by the server: INVALID_ARGUMENT.
        assert "args.ms" in caught.value.message
        failing = executor.map("fail", [{"message": "only"}])
        with pytest.raises(remex.TaskError) as error:
            next(failing)
        assert error.value.message == "only"


def test_map_timeout(address: str) -> None:
    with remex.Executor(address) as executor:
        results = executor.map("sleep", [{"ms": 60000}] * 3, timeout=0.3)
        with pytest.raises(concurrent.futures.TimeoutError):
            list(results)


def test_shutdown_waits_and_refuses_new_submits(address: str) -> None:
    executor = remex.Executor(address)
    futures = [executor.submit("sleep", {"ms": 20}) for _ in range(20)]
    executor.shutdown(wait=True)
    assert all(f.done() and not f.cancelled() for f in futures)
    with pytest.raises(RuntimeError):
        executor.submit("echo")


def test_shutdown_cancel_futures_cancels_on_the_server(address: str) -> None:
    executor = remex.Executor(address)
    futures = [executor.submit("sleep", {"ms": 60000}) for _ in range(5)]
    ids = [f.id for f in futures]
    executor.shutdown(wait=True, cancel_futures=True)
    assert all(f.cancelled() for f in futures)
    with remex.Client(address) as client:
        for task_id in ids:
            task = client.await_task(task_id, timeout=10)
            assert remex.State(task.state) is remex.State.CANCELLED


def test_shutdown_without_wait_lets_futures_finish(address: str) -> None:
    executor = remex.Executor(address)
    future = executor.submit("sleep", {"ms": 100})
    executor.shutdown(wait=False)
    assert future.result(timeout=10) == {"slept_ms": 100}


def test_wait_and_as_completed_on_executor_futures(address: str) -> None:
    with remex.Executor(address) as executor:
        futures = [executor.submit("echo", i) for i in range(1000)]
        done = set()
        for future in concurrent.futures.as_completed(futures, timeout=60):
            done.add(future.result())
        assert done == set(range(1000))
        slow = executor.submit("sleep", {"ms": 60000})
        failing = executor.submit("fail", {"message": "x"})
        finished, pending = concurrent.futures.wait(
            [slow, failing], timeout=10,
            return_when=concurrent.futures.FIRST_EXCEPTION)
        assert finished == {failing} and pending == {slow}
        slow.cancel()


def test_defaults_apply_to_every_submit(address: str) -> None:
    with remex.Executor(address, priority=3, labels={"via": "executor"}
                        ) as executor:
        task = executor.submit("echo", 1)
        override = executor.submit("echo", 2, priority=9)
        task.result(timeout=10)
        override.result(timeout=10)
        assert task.task.priority == 3
        assert dict(task.task.labels) == {"via": "executor"}
        assert override.task.priority == 9
    with pytest.raises(TypeError):
        remex.Executor(address, not_an_option=1)


def test_shares_a_client(address: str) -> None:
    with remex.Client(address) as client:
        with remex.Executor(client=client) as executor:
            assert executor.submit("echo", "shared").result(10) == "shared"
        # The executor does not close a client it was given.
        assert client.submit("echo", "still open").result(10) == "still open"


def test_shutdown_without_wait_closes_the_client_after_the_last(
        address: str) -> None:
    executor = remex.Executor(address)
    futures = [executor.submit("sleep", {"ms": 50}) for _ in range(3)]
    executor.shutdown(wait=False)
    assert not executor.client._closed  # pylint: disable=protected-access
    assert [f.result(timeout=10) for f in futures] == [{"slept_ms": 50}] * 3
    wait_for(lambda: executor.client._closed,  # pylint: disable=protected-access
             what="the client to close")


def test_many_futures_are_tracked_and_waited_for(address: str) -> None:
    # Past the size at which the executor prunes its done futures.
    executor = remex.Executor(address)
    futures = [executor.submit("echo", i) for i in range(10000)]
    slow = executor.submit("sleep", {"ms": 300})
    executor.shutdown(wait=True)
    assert slow.done() and slow.result() == {"slept_ms": 300}
    assert [f.result(timeout=0) for f in futures] == list(range(10000))
    assert executor.client._closed  # pylint: disable=protected-access
