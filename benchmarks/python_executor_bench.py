#!/usr/bin/env python3
"""remex.Executor against concurrent.futures' own executors, in one run.

No-op tasks: throughput (tasks/s, N submitted at once, then all awaited)
and the round trip of one task (submit, then result(); p50 and p99 over
sequential calls). remex runs the built-in `echo` on a remex-server that
this script starts on 127.0.0.1:0 (or --address to use one that runs);
ThreadPoolExecutor and ProcessPoolExecutor run a Python no-op. Figures
depend on the machine and its load: compare rows of one run.

Needs the remex package (README, "The Python client"):
  .venv/bin/python benchmarks/python_executor_bench.py \
      --server build/server/remex-server [--tasks 20000] [--round-trips 500]
"""

import argparse
import concurrent.futures
import os
import re
import signal
import statistics
import subprocess
import time

import remex


def noop(x):
    return x


def throughput(executor, function, n):
    start = time.perf_counter()
    futures = [executor.submit(function, i) for i in range(n)]
    for future in futures:
        future.result()
    return n / (time.perf_counter() - start)


def round_trips(executor, function, n):
    samples = []
    for i in range(n):
        start = time.perf_counter()
        executor.submit(function, i).result()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return (statistics.median(samples) * 1e6,
            samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e6)


def start_server(binary):
    process = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--metrics-listen", "none"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in process.stdout:
        match = re.search(r"listening on (\S+:\d+)", line)
        if match:
            return process, match.group(1)
    raise RuntimeError("remex-server exited before listening")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default="build/server/remex-server")
    parser.add_argument("--address", help="use a running server instead")
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--round-trips", type=int, default=500)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()

    process = None
    address = args.address
    if address is None:
        process, address = start_server(args.server)
    try:
        rows = []
        executors = [
            ("remex.Executor (echo)", lambda: remex.Executor(address), "echo"),
            ("ThreadPoolExecutor", lambda: concurrent.futures.ThreadPoolExecutor(
                args.workers), noop),
            ("ProcessPoolExecutor", lambda: concurrent.futures.ProcessPoolExecutor(
                args.workers), noop),
        ]
        for name, make, function in executors:
            with make() as executor:
                executor.submit(function, 0).result()  # Warm up.
                rate = throughput(executor, function, args.tasks)
                p50, p99 = round_trips(executor, function, args.round_trips)
            rows.append((name, rate, p50, p99))
        print(f"{args.tasks} no-op tasks at once; {args.round_trips} sequential "
              f"round trips; {args.workers} local workers; server {address}")
        print(f"{'executor':<24} {'tasks/s':>10} {'p50_us':>9} {'p99_us':>9}")
        for name, rate, p50, p99 in rows:
            print(f"{name:<24} {rate:>10.0f} {p50:>9.0f} {p99:>9.0f}")
    finally:
        if process is not None:
            os.kill(process.pid, signal.SIGTERM)
            process.wait()


if __name__ == "__main__":
    main()
