#!/usr/bin/env python3
"""remex.aio: a thousand tasks with asyncio.gather, one stream underneath.

Usage: asyncio_gather.py [HOST:PORT]   (default localhost:50051)
"""

import asyncio
import sys

import remex
import remex.aio


async def main(address: str) -> None:
    async with remex.aio.Client(address) as client:
        digests = await asyncio.gather(
            *(client.submit("sha256", {"text": str(i)}) for i in range(1000)))
        print("tasks:", len(digests), "first:", digests[0][:16])

        slow = client.submit("sleep", {"ms": 60000})
        try:
            # Leaves the task running (asyncio.wait_for would cancel it).
            await asyncio.wait_for(asyncio.shield(slow), timeout=0.2)
        except asyncio.TimeoutError:
            print("still running:", slow.running())
        slow.cancel()

        try:
            await client.submit("fail", {"message": "async failure"})
        except remex.TaskError as error:
            print("failed:", error.state.name, error.message)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "localhost:50051"))
