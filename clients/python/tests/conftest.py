"""Fixtures: a real remex-server on 127.0.0.1 port 0, stopped by pid.

The server binary comes from $REMEX_SERVER (ctest sets it) or
--remex-server PATH.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Callable, Iterator, List, Optional

import pytest

import remex

START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 30


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--remex-server", default=os.environ.get("REMEX_SERVER"),
                     help="path of the remex-server binary")


class ServerProcess:
    """remex-server on 127.0.0.1, an ephemeral port; `stop()` or `kill()`
    ends it by its pid."""

    def __init__(self, binary: str, extra: List[str]) -> None:
        self._process = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--metrics-listen", "none",
             "--enable-test-functions", *extra],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.pid = self._process.pid
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.address = self._wait_for_address()

    def _pump(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            sys.stdout.write("[server] " + line)
            self._lines.put(line)
        self._lines.put(None)

    def _wait_for_address(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            line = self._lines.get(timeout=max(0.0,
                                               deadline - time.monotonic()))
            if line is None:
                raise RuntimeError("remex-server exited before listening")
            match = re.search(r"listening on (\S+:\d+)", line)
            if match:
                return match.group(1)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self._process.poll() is None:
            os.kill(self.pid, sig)
        try:
            self._process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self._process.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@pytest.fixture(scope="session")
def server_binary(request: pytest.FixtureRequest) -> str:
    binary = request.config.getoption("--remex-server")
    if not binary:
        pytest.fail("set $REMEX_SERVER or --remex-server to remex-server")
    return binary


@pytest.fixture(scope="session")
def start_server(server_binary: str
                 ) -> Iterator[Callable[..., ServerProcess]]:
    """Starts servers with extra flags; all are stopped at the end."""
    started: List[ServerProcess] = []

    def start(*extra: str) -> ServerProcess:
        server = ServerProcess(server_binary, list(extra))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    """One server shared by the tests that need no flags of their own."""
    return start_server()


@pytest.fixture(scope="session")
def address(server: ServerProcess) -> str:
    return server.address


@pytest.fixture
def client(address: str) -> Iterator[remex.Client]:
    with remex.Client(address) as c:
        yield c


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0,
             what: str = "condition") -> None:
    """Polls `condition` until true; fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
