"""The examples run against a real server and print what they promise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "examples")


def run_example(name: str, address: str) -> str:
    completed = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, name), address],
        capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


@pytest.mark.parametrize("name,expected", [
    ("quickstart.py", ["primes below 100000: 9592",
                       "sha256(hello): 2cf24dba5fb0a30e26e83b2ac5b9e29e",
                       "failed: FAILED no luck"]),
    ("process_pool.py", ["remote: [5133, 9592, 13848, 17984] 17984"]),
    ("celery_delay.py", ["ready:", "digest: 2cf24dba", "watched: True",
                         "revoked: True"]),
    ("asyncio_gather.py", ["tasks: 1000", "still running: True",
                           "failed: FAILED async failure"]),
])
def test_example(name: str, expected: list, address: str) -> None:
    output = run_example(name, address)
    for text in expected:
        assert text in output, output
