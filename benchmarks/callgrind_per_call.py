#!/usr/bin/python3
"""Instructions (all threads) per call of a function in a benchmark, by
callgrind: runs the benchmark twice with different --benchmark_min_time and
divides the difference of the instruction totals by the difference of the
call counts, so that start-up and set-up cancel out.

  benchmarks/callgrind_per_call.py build/benchmarks/rpc_benchmark \
      'BM_SdkSessionThroughput/window:1000/' 'Client::SubmitAsync'

Needs valgrind. Repeatable to a few per cent, unlike wall-clock figures on a
shared machine.
"""
import re
import subprocess
import sys
import tempfile


def run(binary, benchmark, min_time, out):
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
         binary, f"--benchmark_filter={benchmark}",
         f"--benchmark_min_time={min_time}"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def totals(path, function):
    """(calls of functions matching `function`, total instructions)."""
    names = {}
    callee = None
    calls = 0
    total = 0
    with open(path) as lines:
        for line in lines:
            m = re.match(r"(cfn|fn)=\((\d+)\)(?: (.*))?", line)
            if m:
                if m.group(3):
                    names[m.group(2)] = m.group(3)
                if m.group(1) == "cfn":
                    callee = names.get(m.group(2), "")
                continue
            m = re.match(r"calls=(\d+)", line)
            if m and callee and re.search(function, callee):
                calls += int(m.group(1))
            m = re.match(r"(?:summary|totals): (\d+)", line)
            if m:
                total = int(m.group(1))
    return calls, total


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    binary, benchmark, function = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        results = []
        for min_time in ("0.5", "3"):
            out = f"{tmp}/callgrind.{min_time}.out"
            run(binary, benchmark, min_time, out)
            results.append(totals(out, function))
    calls = results[1][0] - results[0][0]
    instructions = results[1][1] - results[0][1]
    if calls <= 0:
        sys.exit("no more calls in the longer run; check the names")
    print(f"{function}: {calls} calls, {instructions / calls:.0f} "
          "instructions per call (all threads)")


if __name__ == "__main__":
    main()
