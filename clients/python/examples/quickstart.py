#!/usr/bin/env python3
"""Submit a task, get its result, handle a failure.

Usage: quickstart.py [HOST:PORT]   (default localhost:50051)
"""

import sys

import remex

address = sys.argv[1] if len(sys.argv) > 1 else "localhost:50051"

with remex.Client(address) as client:
    future = client.submit("primes", {"n": 100000})
    print("primes below 100000:", future.result(timeout=30))

    digest = client.submit("sha256", input=b"hello").result(timeout=30)
    print("sha256(hello):", digest)

    try:
        client.submit("fail", {"message": "no luck"}).result(timeout=30)
    except remex.TaskError as error:
        print("failed:", error.state.name, error.message)
