#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target under corpus/<target>/.

The seeds are small valid (and a few nearly valid) inputs, so that the
fuzzers start from the formats' shapes; run it again after changing a
target's input format. Protobuf messages are encoded by hand here (no
generated Python code needed).
"""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field_varint(number, value):
    return varint(number << 3) + varint(value)


def field_bytes(number, data):
    if isinstance(data, str):
        data = data.encode()
    return varint((number << 3) | 2) + varint(len(data)) + data


def field_double(number, value):
    return varint((number << 3) | 1) + struct.pack("<d", value)


# google.protobuf.Value / Struct / ListValue / Duration
def v_null():
    return field_varint(1, 0)


def v_number(x):
    return field_double(2, x)


def v_string(s):
    return field_bytes(3, s)


def v_bool(b):
    return field_varint(4, int(b))


def v_struct(fields):
    body = b""
    for key, value in fields.items():
        body += field_bytes(1, field_bytes(1, key) + field_bytes(2, value))
    return field_bytes(5, body)


def v_list(values):
    return field_bytes(6, b"".join(field_bytes(1, v) for v in values))


def duration(seconds, nanos=0):
    return field_varint(1, seconds) + field_varint(2, nanos & 0xFFFFFFFF)


def submit(function, args=None, input_=b"", pool="", priority=0,
           queue_timeout=None, run_timeout=None, max_attempts=0, labels=None,
           ttl=None):
    m = field_bytes(1, function)
    if args is not None:
        m += field_bytes(2, args)
    if input_:
        m += field_bytes(3, input_)
    if pool:
        m += field_bytes(4, pool)
    if priority:
        m += field_varint(5, priority)
    if queue_timeout is not None:
        m += field_bytes(6, queue_timeout)
    if run_timeout is not None:
        m += field_bytes(7, run_timeout)
    if max_attempts:
        m += field_varint(8, max_attempts)
    for k, v in (labels or {}).items():
        m += field_bytes(9, field_bytes(1, k) + field_bytes(2, v))
    if ttl is not None:
        m += field_bytes(10, ttl)
    return m


def write(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def config_seeds():
    t = "config_fuzzer"
    write(t, "empty", "")
    write(t, "pools.yaml", """pools:
  - name: default
    kind: thread
    workers: 4
    max_queue: 1000
  - name: process
    kind: process
    workers: 2
    cancel_grace: 500ms
    memory_limit_bytes: 268435456
    cpu_limit_seconds: 10
    max_open_files: 64
    max_tasks_per_worker: 100
retention: {ttl: 10m, max_tasks: 1000, max_bytes: 1048576}
shutdown_grace: 10s
max_connection_idle: 5m
pollers: 2
""")
    write(t, "functions.yaml", """functions:
  - name: tr
    description: translate
    command: [/usr/bin/tr, "{from}", "x{to}", "{{literal}}"]
    pool: default
    run_timeout: 30s
    cancel_grace: 2
    env: {LANG: C}
    working_dir: /tmp
    max_output_bytes: 4096
    allow_option_values: false
""")
    write(t, "security.yaml", """auth: auth.yaml
insecure: false
tls_cert: cert.pem
tls_key: key.pem
tls_client_ca: ca.pem
store: memory
replica_name: replica-1
plugins: [libfoo.so, /abs/bar.so]
""")
    write(t, "store.json", '{"store": "postgresql://remex@localhost:5432/remex?sslmode=disable", '
          '"retention": {"ttl": 60}}')
    write(t, "anchors.yaml", "x: &a [1, 2]\npools: *a\n")
    write(t, "bad.yaml", "pools: [{name: a, kind: fiber}]\nretention: {ttl: -1s}\n")


def auth_seeds():
    t = "auth_file_fuzzer"
    digest = hashlib.sha256(b"alice-token").hexdigest()
    file = f"""principals:
  - name: alice
    token_sha256: {digest}
    roles: [submit, read]
    functions: ["echo", "report_*", "[a-c]?"]
    max_active_tasks: 100
  - name: ci-runner
    roles: [read]
  - name: ops
    token_sha256: {hashlib.sha256(b"ops").hexdigest().upper()}
    roles: [admin]
"""
    write(t, "token", file + "\0Bearer alice-token\0\0report_daily")
    write(t, "cn", file + "\0\0ci-runner\0echo")
    write(t, "bad_token", file + "\0Basic xyz\0\0echo")
    write(t, "flow.json", '{"principals": [{"name": "a", "roles": ["read"]}]}\0\0a\0x')
    write(t, "bad_role", "principals:\n  - name: a\n    roles: [root]\n")


def request_seeds():
    t = "request_fuzzer"
    submits = {
        "submit_echo": submit("echo", v_struct({"x": v_number(1)}), b"hi",
                              labels={"team": "a"}),
        "submit_sleep": submit("sleep", v_struct({"ms": v_number(10)}),
                               run_timeout=duration(1), queue_timeout=duration(0, 5000)),
        "submit_fail": submit("fail", v_struct({"message": v_string("boom")}),
                              max_attempts=3, ttl=duration(60)),
        "submit_sha256": submit("sha256", v_struct({"text": v_string("abc")})),
        "submit_primes": submit("primes", v_struct({"n": v_number(1000)}), priority=5),
        "submit_spin": submit("spin", v_struct({"ms": v_number(1)}), pool="default"),
        "submit_crash": submit("crash", v_struct({"how": v_string("exit")})),
        "submit_tr": submit("tr", v_struct({"from": v_string("a-z"), "to": v_string("A-Z")})),
        "submit_tr_option": submit("tr", v_struct({"from": v_string("-d"), "to": v_number(-1)})),
        "submit_nested": submit("echo", v_list([v_list([v_struct({"a": v_null(), "b": v_bool(True)})])])),
        "submit_bad_duration": submit("echo", run_timeout=duration(-1, 5)),
        "submit_unknown": submit("nope", pool="nowhere"),
    }
    for name, body in submits.items():
        write(t, name, b"\x00" + body)
    # Method byte % 5: 0 Submit, 1 List, 2 Get/Cancel/Delete (by byte / 5),
    # 3 Await, 4 Session.
    session = (field_bytes(1, field_varint(1, 1) + field_bytes(2, submits["submit_echo"]))
               + field_bytes(1, field_varint(1, 1) + field_bytes(2, submits["submit_fail"]))
               + field_bytes(1, field_varint(1, 2) + field_bytes(2, submits["submit_unknown"]))
               + field_bytes(2, field_varint(1, 3) + field_bytes(2, "0123456789abcdefghijk"))
               + field_bytes(3, field_varint(1, 1) + field_bytes(2, "x")))
    write(t, "session_batch", b"\x04" + session)
    write(t, "list_all", b"\x01")
    write(t, "list_filter", b"\x01" + field_varint(1, 3) + field_bytes(2, "echo")
          + field_varint(4, 5) + field_bytes(5, "p1"))
    write(t, "list_bad_token", b"\x01" + field_bytes(5, "p0x"))
    write(t, "get", b"\x02" + field_bytes(1, "0123456789abcdefghijk"))
    write(t, "cancel", b"\x07" + field_bytes(1, "x"))
    write(t, "delete", b"\x0c" + field_bytes(1, "y"))
    write(t, "await", b"\x03" + field_bytes(1, "z") + field_bytes(2, duration(30)))


def frame(message):
    return struct.pack("<I", len(message)) + message


def worker_seeds():
    t = "worker_protocol_fuzzer"
    # ToWorker: setup = 1, run = 2, cancel = 3.
    setup = field_bytes(1, field_bytes(1, "process") + field_varint(2, 1 << 28))
    run_echo = field_bytes(2, field_varint(1, 1) + field_bytes(2, "task1")
                           + field_bytes(3, "echo") + field_bytes(4, '{"x":[1,2]}')
                           + field_bytes(5, b"\x00\xff") + field_varint(6, 1))
    run_fail = field_bytes(2, field_varint(1, 2) + field_bytes(3, "fail")
                           + field_bytes(4, '{"message":"no"}'))
    run_sha = field_bytes(2, field_varint(1, 3) + field_bytes(3, "sha256")
                          + field_bytes(4, '{"text":"abc"}'))
    cancel = field_bytes(3, field_varint(1, 1))
    write(t, "to_worker", frame(setup) + frame(run_echo) + frame(cancel)
          + frame(run_fail) + frame(run_sha))
    # FromWorker: ready = 1, result = 2.
    ready = field_bytes(1, field_varint(1, 1234))
    ok = field_bytes(2, field_varint(1, 1) + field_bytes(4, '{"a":1}')
                     + field_bytes(5, b"out"))
    failed = field_bytes(2, field_varint(1, 2) + field_varint(2, 3)
                         + field_bytes(3, "bad args"))
    garbled = field_bytes(2, field_varint(1, 3) + field_bytes(4, "{nope"))
    write(t, "from_worker", frame(ready) + frame(ok) + frame(failed) + frame(garbled))
    write(t, "cut", frame(ok)[:-2])
    write(t, "huge_length", b"\xff\xff\xff\x7f")


def command_seeds():
    t = "command_args_fuzzer"
    write(t, "tr", '{from}\nx{to}\0{"from": "a-z", "to": "A-Z"}')
    write(t, "braces", '{{literal}}\n--name={n}\n{a}{b}\0{"n": 1.5, "a": "", "b": "-x"}')
    write(t, "option", 'A{flag}\0{"flag": "--help"}')
    write(t, "types", '{v}\0{"v": [1]}')
    write(t, "bad_placeholder", '{1x}\0{}')
    write(t, "lone_brace", 'a}b\0null')


def page_token_seeds():
    t = "page_token_fuzzer"
    write(t, "first_page", b"\x00" * 16)
    write(t, "token", struct.pack("<Q", 5) + struct.pack("<i", 3) + b"\x02\x01p5")
    write(t, "bad_token", struct.pack("<Q", 1) + struct.pack("<i", 0) + b"\x00\x00p00")
    write(t, "huge_token", struct.pack("<Q", 7) + struct.pack("<i", -1) + b"\x04\x00p18446744073709551616")


if __name__ == "__main__":
    config_seeds()
    auth_seeds()
    request_seeds()
    worker_seeds()
    command_seeds()
    page_token_seeds()
