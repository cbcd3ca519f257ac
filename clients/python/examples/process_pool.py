#!/usr/bin/env python3
"""remex.Executor in place of concurrent.futures.ProcessPoolExecutor.

The same code runs on a local process pool and on a remex server: only the
executor and the callable change. A remex "callable" is the name of a
function registered on the server (built-in, plugin or command function),
and its arguments are one JSON value.

Usage: process_pool.py [HOST:PORT]   (default localhost:50051)
"""

import concurrent.futures
import sys

import remex

LIMITS = [50000, 100000, 150000, 200000]


def count_primes(n: int) -> int:
    """What the server's built-in `primes` computes: primes <= n."""
    sieve = bytearray([1]) * (n + 1)
    sieve[:2] = b"\0\0"
    for i in range(2, int(n**0.5) + 1):
        if sieve[i]:
            sieve[i * i::i] = bytearray(len(sieve[i * i::i]))
    return sum(sieve)


def largest(executor: concurrent.futures.Executor, function, args) -> int:
    """Code written against concurrent.futures, whatever the executor."""
    futures = {executor.submit(function, a): a for a in args}
    best = 0
    for future in concurrent.futures.as_completed(futures):
        best = max(best, future.result())
    return best


def main() -> None:
    address = sys.argv[1] if len(sys.argv) > 1 else "localhost:50051"

    # Before: a local process pool.
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as pool:
        local = list(pool.map(count_primes, LIMITS))
        local_best = largest(pool, count_primes, LIMITS)

    # After: the same on remex (here on its "process" pool of workers).
    with remex.Executor(address, pool="process") as pool:
        remote = list(pool.map("primes", [{"n": n} for n in LIMITS]))
        remote_best = largest(pool, "primes", [{"n": n} for n in LIMITS])

    print("local: ", local, local_best)
    print("remote:", remote, remote_best)
    assert local == remote and local_best == remote_best


if __name__ == "__main__":
    main()
