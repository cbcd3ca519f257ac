#!/usr/bin/env python3
"""remex.Executor against concurrent.futures' own executors and Celery, in one run.

No-op tasks, side by side on the same machine in the same run:

- throughput: N tasks submitted at once, then every result awaited
  (tasks/s), after a warm-up round of N/10;
- round trip: one task at a time, submit then result() (p50 and p99 over
  sequential calls).

Rows:
- remex.Executor: the built-in `echo` on a remex-server this script starts
  on 127.0.0.1:0 (or --address to use one that runs).
- ThreadPoolExecutor and ProcessPoolExecutor (--workers, default the number
  of cores): a Python no-op.
- Celery with Redis, when python3-celery, python3-redis and redis-server
  are installed (else the row says why it is skipped): a redis-server on a
  free 127.0.0.1 port and a Celery worker (prefork, --workers processes)
  started for the row and stopped after it; `noop.delay(i)` then `.get()`
  from a child process (so that Celery's modules do not weigh on this
  process's garbage collector during the other rows).
- the C++ SDK's round trip: remex-bench's rtt scenario against the same
  server (its `SDK submit->result p50`), when build/benchmarks/remex-bench
  exists;
- remex.Client's round trip, `client.submit("echo").result()`: the Python
  twin of the C++ SDK's call that remex-bench times;
- a bare grpc-python Session stream's round trip (no remex code; the
  calling thread reads the answers itself): the floor of Python's sync
  gRPC stack for the exchange remex.Client makes.

Each row is measured --repeat times, the executors taking turns, and the
table shows medians, then the ratios the targets name (issue 18): remex
tasks/s over ThreadPoolExecutor's (>= 1) and over Celery's (>= 50), and
the Python round trips' p50 (remex.Client's and remex.Executor's) over the
C++ SDK's (<= 2). Figures depend on the
machine and its load: compare rows of one run (BENCHMARKS.md, "Python
client").

Needs the remex package (README, "The Python client"):
  .venv/bin/python benchmarks/python_executor_bench.py \\
      --server build/server/remex-server [--tasks 50000] [--repeat 3]
"""

import argparse
import concurrent.futures
import gc
import importlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import remex


BARE = "bare grpc-python stream"
CLIENT = "remex.Client (echo)"
CPP = "C++ SDK (remex-bench rtt)"


def noop(x):
    return x


def throughput(submit, n):
    """tasks/s of n no-op tasks submitted at once, then all awaited."""
    start = time.perf_counter()
    futures = [submit(i) for i in range(n)]
    for future in futures:
        future.result()
    return n / (time.perf_counter() - start)


def round_trips(submit, n):
    """p50 and p99 in microseconds of n sequential submit+result."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        submit(None).result()
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


def stop(process):
    if process is not None and process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Remex:
    name = "remex.Executor (echo)"

    def __init__(self, address):
        self.executor = remex.Executor(address)

    def submit(self, i):
        return self.executor.submit("echo", i)

    def close(self):
        self.executor.shutdown()


class Local:
    def __init__(self, name, executor):
        self.name = name
        self.executor = executor

    def submit(self, i):
        return self.executor.submit(noop, i)

    def close(self):
        self.executor.shutdown()


_CELERY_APP = '''
from celery import Celery
app = Celery("remex_bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.worker_hijack_root_logger = False

@app.task
def noop(x):
    return x
'''


class Celery:
    """A redis-server and a Celery worker of our own; the client app in
    this process (the child of CeleryRow). Its futures are AsyncResults
    (`.get()`)."""

    name = "Celery + Redis"
    instances = 0

    @staticmethod
    def missing():
        """Why Celery cannot run here, or None (without importing it)."""
        for module in ("celery", "redis"):
            if importlib.util.find_spec(module) is None:
                return (f"skipped: {module} is not installed (apt-get "
                        "install python3-celery python3-redis redis-server)")
        if shutil.which("redis-server") is None:
            return "skipped: redis-server is not installed"
        return None

    def __init__(self, workers):
        self.redis = None
        self.worker = None
        self.task = None
        self.dir = tempfile.mkdtemp(prefix="remex-celery-bench-")
        try:
            self._start(workers)
        except BaseException:
            self.close()
            raise

    def _start(self, workers):
        port = free_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        # A module of its own per instance: the worker imports it by name,
        # and this process must not reuse an app bound to an older Redis.
        Celery.instances += 1
        module = f"remex_bench_celery_{os.getpid()}_{Celery.instances}"
        with open(os.path.join(self.dir, module + ".py"), "w",
                  encoding="utf-8") as app:
            app.write(_CELERY_APP.replace("REDIS_URL", repr(url)))
        self._wait_for_redis(port)
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", module, "worker",
             "--pool", "prefork", "--concurrency", str(workers),
             "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
             "--without-heartbeat"],
            cwd=self.dir, env=dict(os.environ, PYTHONPATH=self.dir),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        sys.path.insert(0, self.dir)
        try:
            self.task = importlib.import_module(module).noop
        finally:
            sys.path.remove(self.dir)
        self.task.delay(0).get(timeout=60)  # The worker is up.

    @staticmethod
    def _wait_for_redis(port):
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), 0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def submit(self, i):
        return _CeleryFuture(self.task.delay(i))

    def close(self):
        # AsyncResults left for the collector unsubscribe from Redis when
        # freed: before it stops, not after.
        gc.collect()
        if self.task is not None:
            self.task.app.close()
        if self.worker is not None and self.worker.poll() is None:
            os.killpg(self.worker.pid, signal.SIGTERM)  # Its own group.
            try:
                self.worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.worker.pid, signal.SIGKILL)
                self.worker.wait()
        stop(self.redis)
        shutil.rmtree(self.dir, ignore_errors=True)


class _CeleryFuture:
    def __init__(self, result):
        self._result = result

    def result(self):
        return self._result.get(timeout=120)


def bare_stream_rtt(address, samples):
    """p50 and p99 (us) of the same round trip with no remex code: a bare
    grpc-python Session stream, the calling thread reading the answers
    itself (one thread fewer than remex.Client), its request generator fed
    from a queue. The floor of the sync gRPC stack for this exchange."""
    import queue  # pylint: disable=import-outside-toplevel
    import grpc  # pylint: disable=import-outside-toplevel
    from remex.v1 import executor_pb2  # pylint: disable=import-outside-toplevel
    channel = grpc.insecure_channel(address)
    session = channel.stream_stream(
        "/remex.v1.Executor/Session", request_serializer=None,
        response_deserializer=executor_pb2.SessionResponse.FromString)
    requests = queue.SimpleQueue()
    stop_marker = object()

    def generate():
        while True:
            item = requests.get()
            if item is stop_marker:
                return
            yield item

    responses = session(generate())
    times = []
    for seq in range(1, samples + 51):
        message = executor_pb2.SessionRequest()
        message.submits.add(seq=seq).request.function = "echo"
        data = message.SerializeToString()
        start = time.perf_counter()
        requests.put(data)
        while not next(responses).done:
            pass
        if seq > 50:  # Warm-up.
            times.append(time.perf_counter() - start)
    requests.put(stop_marker)
    responses.cancel()
    channel.close()
    times.sort()
    return (statistics.median(times) * 1e6,
            times[min(len(times) - 1, int(len(times) * 0.99))] * 1e6)


def client_rtt(address, samples):
    """p50 and p99 (us) of `remex.Client.submit("echo").result()`, the
    Python twin of the C++ SDK's `Client::Submit("echo").result()` that
    remex-bench times: no Executor bookkeeping, a fresh client."""
    client = remex.Client(address)
    try:
        for _ in range(50):  # Warm-up: the stream, the server's pool.
            client.submit("echo").result()
        return round_trips(lambda _: client.submit("echo"), samples)
    finally:
        client.close()


class CeleryRow:
    """Measures Celery in a child process (this script with --celery-child):
    importing Celery and kombu leaves tens of thousands of objects in the
    heap, and every later full garbage collection of this process scans
    them (ThreadPoolExecutor, whose futures make the collector run often,
    lost up to half its rate to that here)."""

    name = Celery.name

    def __init__(self, workers):
        self.workers = workers

    def measure(self, tasks, trips):
        child = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--celery-child",
             "--workers", str(self.workers), "--celery-tasks", str(tasks),
             "--celery-round-trips", str(trips)],
            check=True, stdout=subprocess.PIPE, text=True)
        return tuple(json.loads(child.stdout.strip().splitlines()[-1]))

    def close(self):
        pass


def cpp_rtt(remex_bench, address, server_pid, samples):
    """remex-bench's `SDK submit->result p50` against the same server."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            [remex_bench, "--target", address, "--server-pid",
             str(server_pid), "--scenarios", "rtt", "--repeat", "1",
             "--rtt-samples", str(samples), "--json", out.name],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out.name, encoding="utf-8") as f:
            rows = json.load(f)["rows"]
    for row in rows:
        if row["metric"] == "SDK submit->result p50":
            return row["remex"]
    raise RuntimeError("remex-bench printed no SDK rtt p50")


def measure(row, tasks, trips):
    if isinstance(row, CeleryRow):
        return row.measure(tasks, trips)
    row.submit(0).result()  # Warm-up: connections, workers, pools.
    throughput(row.submit, max(1, tasks // 10))
    rate = throughput(row.submit, tasks)
    p50, p99 = round_trips(row.submit, trips)
    return rate, p50, p99


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default="build/server/remex-server")
    parser.add_argument("--address", help="use a running server instead")
    parser.add_argument("--remex-bench", default="build/benchmarks/remex-bench",
                        help="for the C++ SDK's round trip ('' to skip)")
    parser.add_argument("--tasks", type=int, default=50000)
    parser.add_argument("--round-trips", type=int, default=1000)
    parser.add_argument("--process-tasks", type=int, default=20000,
                        help="tasks for ProcessPoolExecutor")
    parser.add_argument("--celery-tasks", type=int, default=2000)
    parser.add_argument("--celery-round-trips", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-celery", action="store_true")
    parser.add_argument("--json", help="also write the medians and runs here")
    parser.add_argument("--celery-child", action="store_true",
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.celery_child:
        row = Celery(args.workers)
        try:
            print(json.dumps(measure(row, args.celery_tasks,
                                     args.celery_round_trips)))
        finally:
            row.close()
        return

    process = None
    address = args.address
    server_pid = None
    if address is None:
        process, address = start_server(args.server)
        server_pid = process.pid
    celery_missing = ("skipped: --no-celery" if args.no_celery
                      else Celery.missing())
    use_cpp = (bool(args.remex_bench) and os.access(args.remex_bench, os.X_OK)
               and server_pid is not None)
    runs = {}  # name -> list of (rate, p50, p99)
    order = []
    try:
        rows = [
            (lambda: Remex(address), args.tasks, args.round_trips),
            (lambda: Local("ThreadPoolExecutor",
                           concurrent.futures.ThreadPoolExecutor(args.workers)),
             args.tasks, args.round_trips),
            (lambda: Local("ProcessPoolExecutor",
                           concurrent.futures.ProcessPoolExecutor(args.workers)),
             args.process_tasks, args.round_trips),
        ]
        if celery_missing is None:
            # Started for its own row and stopped after it, as the
            # executors are: an idle worker and redis-server take CPU from
            # the other rows (remex.Executor lost a fifth to them here).
            rows.append((lambda: CeleryRow(args.workers), args.celery_tasks,
                         args.celery_round_trips))
        for run in range(args.repeat):
            for make, tasks, trips in rows:
                row = make()
                try:
                    result = measure(row, tasks, trips)
                finally:
                    row.close()
                if row.name not in runs:
                    runs[row.name] = []
                    order.append(row.name)
                runs[row.name].append(result)
                print(f"run {run + 1}/{args.repeat}: {row.name}: "
                      f"{result[0]:.0f} tasks/s, p50 {result[1]:.0f} us",
                      file=sys.stderr)
            for name, rtt in ((CLIENT, client_rtt), (BARE, bare_stream_rtt)):
                p50, p99 = rtt(address, args.round_trips)
                runs.setdefault(name, []).append((None, p50, p99))
                print(f"run {run + 1}/{args.repeat}: {name} rtt p50 "
                      f"{p50:.0f} us", file=sys.stderr)
            if use_cpp:
                p50 = cpp_rtt(args.remex_bench, address, server_pid,
                              args.round_trips)
                runs.setdefault(CPP, []).append(
                    (None, p50, None))
                print(f"run {run + 1}/{args.repeat}: C++ SDK rtt p50 "
                      f"{p50:.0f} us", file=sys.stderr)
    finally:
        stop(process)

    order += [CLIENT, BARE]
    if use_cpp:
        order.append(CPP)

    def median(name, index):
        values = [r[index] for r in runs.get(name, []) if r[index] is not None]
        return statistics.median(values) if values else None

    def fmt(value):
        return "-" if value is None else f"{value:.0f}"

    print(f"no-op tasks: {args.tasks} at once (ProcessPoolExecutor "
          f"{args.process_tasks}, Celery {args.celery_tasks}) after a "
          f"warm-up of a tenth; {args.round_trips} sequential round trips "
          f"(Celery {args.celery_round_trips}); {args.workers} local "
          f"workers; server {address}; medians of {args.repeat} runs")
    print(f"| {'executor':<28} | {'tasks/s':>9} | {'rtt p50 us':>10} | "
          f"{'rtt p99 us':>10} |")
    print(f"|{'-' * 30}|{'-' * 11}|{'-' * 12}|{'-' * 12}|")
    for name in order:
        print(f"| {name:<28} | {fmt(median(name, 0)):>9} | "
              f"{fmt(median(name, 1)):>10} | {fmt(median(name, 2)):>10} |")
    if celery_missing is not None:
        print(f"| {'Celery + Redis':<28} | {celery_missing}")

    ratios = []

    def ratio(label, numerator, denominator, index, target, ok):
        """The ratio of the two rows' medians, and each run's own ratio
        (the rows of one run are minutes apart at most: the machine's load
        moves less within a run than across runs)."""
        top, bottom = median(numerator, index), median(denominator, index)
        if top is None or bottom is None:
            ratios.append((label, None, target, "not measured", []))
            return
        value = top / bottom
        pairs = zip(runs.get(numerator, []), runs.get(denominator, []))
        per_run = [a[index] / b[index] for a, b in pairs
                   if a[index] is not None and b[index]]
        ratios.append((label, value, target,
                       "-" if target == "-" else
                       "met" if ok(value) else "MISSED", per_run))

    ratio("remex / ThreadPoolExecutor tasks/s", Remex.name,
          "ThreadPoolExecutor", 0, ">= 1", lambda v: v >= 1)
    ratio("remex / Celery tasks/s", Remex.name, Celery.name, 0, ">= 50",
          lambda v: v >= 50)
    ratio("remex.Client rtt p50 / C++ SDK rtt p50", CLIENT, CPP, 1, "<= 2",
          lambda v: v <= 2)
    ratio("remex.Executor rtt p50 / C++ SDK rtt p50", Remex.name, CPP, 1,
          "<= 2", lambda v: v <= 2)
    ratio("bare grpc-python stream / C++ SDK rtt p50", BARE, CPP, 1, "-",
          lambda v: True)
    print()
    print(f"| {'ratio (medians)':<41} | {'value':>7} | {'target':>6} | "
          "result | each run")
    print(f"|{'-' * 43}|{'-' * 9}|{'-' * 8}|--------|---------")
    for label, value, target, result, per_run in ratios:
        shown = "-" if value is None else f"{value:.2f}"
        each = ", ".join(f"{r:.2f}" for r in per_run)
        print(f"| {label:<41} | {shown:>7} | {target:>6} | {result} | {each}")

    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({
                "runs": {name: [list(r) for r in values]
                         for name, values in runs.items()},
                "medians": {name: [median(name, i) for i in range(3)]
                            for name in order},
                "ratios": [{"label": label, "value": value, "target": target,
                            "result": result, "runs": per_run}
                           for label, value, target, result, per_run
                           in ratios],
                "celery": celery_missing or "measured",
            }, out, indent=1)


if __name__ == "__main__":
    main()
