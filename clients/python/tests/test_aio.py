"""remex.aio over asyncio against a real remex-server."""

from __future__ import annotations

import asyncio

import grpc
import pytest

import remex
import remex.aio


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 120))


def test_echo_fail_and_unknown(address: str) -> None:
    async def main() -> None:
        async with remex.aio.Client(address) as client:
            future = client.submit("echo", {"x": [1, "a"]}, input=b"\x00\x01")
            assert isinstance(future, asyncio.Future)
            assert await future == {"x": [1, "a"]}
            assert await future.output() == b"\x00\x01"
            assert future.id and future.task.id == future.id
            assert (await client.get(future.id)).function == "echo"
            with pytest.raises(remex.TaskError) as failed:
                await client.submit("fail", {"message": "aio"})
            assert failed.value.state is remex.State.FAILED
            assert failed.value.message == "aio"
            unknown = client.submit("nope")
            with pytest.raises(remex.RpcError) as refused:
                await unknown
            assert refused.value.code is grpc.StatusCode.NOT_FOUND
            with pytest.raises(remex.RpcError):
                await unknown.accepted()
    run(main())


def test_gather_and_as_completed_1000(address: str) -> None:
    async def main() -> None:
        async with remex.aio.Client(address) as client:
            results = await asyncio.gather(
                *(client.submit("echo", i) for i in range(1000)))
            assert results == list(range(1000))
            seen = set()
            for next_done in asyncio.as_completed(
                    [client.submit("echo", i) for i in range(1000)]):
                seen.add(await next_done)
            assert seen == set(range(1000))
    run(main())


def test_cancel_and_timeouts(address: str) -> None:
    async def main() -> None:
        async with remex.aio.Client(address) as client:
            future = client.submit("sleep", {"ms": 60000})
            task_id = await future.accepted()
            assert future.running()
            done, pending = await asyncio.wait([future], timeout=0.2)
            assert not done and pending == {future}  # The task goes on.
            assert future.cancel()
            with pytest.raises(asyncio.CancelledError):
                await future
            ended = await client.await_task(task_id, timeout=10)
            assert remex.State(ended.state) is remex.State.CANCELLED
            by_id = client.submit("sleep", {"ms": 60000})
            await client.cancel(await by_id.accepted())
            with pytest.raises(remex.TaskError) as caught:
                await by_id
            assert caught.value.state is remex.State.CANCELLED
            # wait_for cancels the future on timeout, and so the task.
            timed = client.submit("sleep", {"ms": 60000})
            timed_id = await timed.accepted()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(timed, 0.1)
            ended = await client.await_task(timed_id, timeout=10)
            assert remex.State(ended.state) is remex.State.CANCELLED
    run(main())


def test_list_delete_functions_watch(address: str) -> None:
    async def main() -> None:
        async with remex.aio.Client(address) as client:
            futures = [client.submit("echo", {"aio_list": i})
                       for i in range(15)]
            await asyncio.gather(*futures)
            ids = [f.id for f in futures]
            listed = []
            pages = 0
            async for page in client.list(function="echo", page_size=5):
                pages += 1
                listed.extend(t.id for t in page.tasks)
            assert pages >= 3
            assert [i for i in listed if i in set(ids)] == ids
            functions = await client.functions()
            assert "sleep" in {f.name for f in functions.functions}
            watched = client.watch(ids[0])
            assert await watched == {"aio_list": 0}
            await client.delete(ids[0])
            with pytest.raises(remex.RpcError) as caught:
                await client.get(ids[0])
            assert caught.value.code is grpc.StatusCode.NOT_FOUND
    run(main())


def test_close_fails_waiting_futures(address: str) -> None:
    async def main() -> None:
        client = remex.aio.Client(address)
        future = client.submit("sleep", {"ms": 60000})
        task_id = await future.accepted()
        await client.close()
        with pytest.raises(remex.RpcError) as caught:
            await future
        assert caught.value.code is grpc.StatusCode.CANCELLED
        with pytest.raises(RuntimeError):
            client.submit("echo")
        async with remex.aio.Client(address) as other:
            await other.cancel(task_id)
    run(main())


def test_token_over_aio(start_server, tmp_path) -> None:
    from conftest import token_sha256  # pylint: disable=import-outside-toplevel
    path = tmp_path / "auth.yaml"
    path.write_text("principals:\n  - name: carol\n"
                    f"    token_sha256: {token_sha256('carol-token')}\n")
    server = start_server("--auth", str(path))

    async def main() -> None:
        async with remex.aio.Client(server.address,
                                    token="carol-token") as client:
            future = client.submit("echo", 1)
            assert await future == 1
            assert future.task.owner == "carol"
        async with remex.aio.Client(server.address) as anonymous:
            with pytest.raises(remex.RpcError) as caught:
                await anonymous.submit("echo", 1)
            assert caught.value.code is grpc.StatusCode.UNAUTHENTICATED
    run(main())


def test_max_in_flight_holds_the_rest_back(address: str) -> None:
    async def main() -> None:
        async with remex.aio.Client(address, max_in_flight=5) as client:
            futures = [client.submit("sleep", {"ms": 20}) for _ in range(40)]
            book = client._book  # pylint: disable=protected-access
            assert client.in_flight() == 40
            assert len(book.futures) == 5  # The rest wait unsent.
            for next_done in asyncio.as_completed(futures):
                assert await next_done == {"slept_ms": 20}
                assert len(book.futures) <= 5
            assert client.in_flight() == 0
            # No bound: everything goes out at once.
        async with remex.aio.Client(address, max_in_flight=None) as client:
            futures = [client.submit("echo", i) for i in range(300)]
            assert len(client._book.futures) == 300  # pylint: disable=protected-access
            assert await asyncio.gather(*futures) == list(range(300))
        with pytest.raises(ValueError):
            remex.aio.Client(address, max_in_flight=0)
    run(main())


def test_wait_for_room_is_back_pressure(address: str) -> None:
    async def main() -> None:
        async with remex.aio.Client(address, max_in_flight=3) as client:
            futures = []
            for i in range(30):
                await client.wait_for_room()
                assert client.in_flight() < 3
                futures.append(client.submit("sleep", {"ms": 5 + i % 3}))
            assert [r["slept_ms"] for r in await asyncio.gather(*futures)] == [
                5 + i % 3 for i in range(30)]
    run(main())


def test_held_futures_cancel_and_close(address: str) -> None:
    async def main() -> None:
        async with remex.aio.Client(address, max_in_flight=1) as client:
            first = client.submit("sleep", {"ms": 60000})
            held = client.submit("echo", 1)
            assert held.cancel()  # Never sent: no task is made.
            with pytest.raises(asyncio.CancelledError):
                await held.accepted()
            assert held.id is None
            later = client.submit("echo", 2)
            await first.accepted()
            assert not later.running() and later.id is None
            assert first.cancel()  # Its end makes room for `later`.
            assert await later == 2
        client = remex.aio.Client(address, max_in_flight=1)
        blocker = client.submit("sleep", {"ms": 60000})
        blocker_id = await blocker.accepted()
        waiting = client.submit("echo", 3)
        room = asyncio.ensure_future(client.wait_for_room())
        await client.close()
        with pytest.raises(remex.RpcError) as caught:
            await waiting
        assert caught.value.code is grpc.StatusCode.CANCELLED
        with pytest.raises(RuntimeError):
            await room
        with pytest.raises(remex.RpcError):
            await blocker  # The task goes on; this client is gone.
        async with remex.aio.Client(address) as other:
            await other.cancel(blocker_id)
    run(main())
