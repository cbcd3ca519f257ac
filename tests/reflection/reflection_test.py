#!/usr/bin/env python3
"""A generic gRPC client with no remex .proto files talks to remex-server.

It learns the API through server reflection (grpc.reflection.v1alpha, and
v1, which remex serves itself since Debian's gRPC 1.51 does not), builds the
message classes from the descriptors the server sends, and calls Submit and
Await with JSON, as grpcurl does. It also checks grpc.health.v1.Health for
the server ("") and for remex.v1.Executor, serving and draining.

Usage: reflection_test.py PATH_TO_REMEX_SERVER GRPC_PROTO_DIR
  GRPC_PROTO_DIR holds grpc/reflection/v1/reflection.proto and
  grpc/health/v1/health.proto (Debian's grpc-proto: /usr/share/grpc-proto).
"""

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import json_format
from google.protobuf import message_factory

HERE = os.path.dirname(os.path.abspath(__file__))
RPC_TIMEOUT_S = 10
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 30
REFLECTION_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
EXECUTOR = "remex.v1.Executor"
HEALTH = "grpc.health.v1.Health"
SERVER_BINARY = None  # Set from argv in main().
GRPC_PROTO_DIR = None  # Set from argv in main().
# The (v1alpha, v1, health) message modules; set in main().
MESSAGES = None


def load_messages(out_dir):
    """Generates Python messages for the reflection (v1alpha and v1) and
    health protos and imports them: (v1alpha, v1, health) modules.

    The grpc-proto files are copied under names of their own first: as
    grpc/..., their modules would be looked up in the grpc package."""
    sources = {
        "reflection.proto": os.path.join(HERE, "reflection.proto"),
        "reflection_v1.proto": os.path.join(
            GRPC_PROTO_DIR, "grpc", "reflection", "v1", "reflection.proto"),
        "health_v1.proto": os.path.join(
            GRPC_PROTO_DIR, "grpc", "health", "v1", "health.proto"),
    }
    for name, source in sources.items():
        shutil.copyfile(source, os.path.join(out_dir, name))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I" + out_dir,
         "--python_out=" + out_dir] +
        [os.path.join(out_dir, name) for name in sources],
        check=True, timeout=60)
    sys.path.insert(0, out_dir)
    # pylint: disable=import-outside-toplevel
    import health_v1_pb2
    import reflection_pb2
    import reflection_v1_pb2
    return reflection_pb2, reflection_v1_pb2, health_v1_pb2


def wait_until(condition, timeout_s, what):
    """Polls `condition` until it holds; fails after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


def message_class(descriptor):
    """The message class for `descriptor`, on old and new protobuf alike."""
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(descriptor.file.pool).GetPrototype(
        descriptor)


def call_json(channel, service, method_name, request_json):
    """Calls a unary method of `service` (a descriptor) with a JSON request;
    returns the JSON answer."""
    method = service.methods_by_name[method_name]
    request_class = message_class(method.input_type)
    response_class = message_class(method.output_type)
    stub = channel.unary_unary(
        "/%s/%s" % (service.full_name, method_name),
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString)
    request = json_format.Parse(json.dumps(request_json), request_class())
    response = stub(request, timeout=RPC_TIMEOUT_S)
    return json.loads(json_format.MessageToJson(response))


class ServerProcess:
    """remex-server on 127.0.0.1, an ephemeral port; stopped by stop()."""

    def __init__(self, binary, extra_args=()):
        self._process = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--metrics-listen", "none"] +
            list(extra_args),
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True)
        self._lines = queue.Queue()
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()
        self.address = self._wait_for_address()

    def _pump(self):
        for line in self._process.stdout:
            sys.stdout.write("[server] " + line)
            self._lines.put(line)
        self._lines.put(None)

    def _wait_for_address(self):
        while True:
            line = self._lines.get(timeout=START_TIMEOUT_S)
            if line is None:
                raise RuntimeError("remex-server exited before listening")
            match = re.search(r"listening on (\S+:\d+)", line)
            if match:
                return match.group(1)

    def signal(self, signum):
        self._process.send_signal(signum)

    def wait(self):
        """Waits for the exit; returns the exit code."""
        exit_code = self._process.wait(timeout=STOP_TIMEOUT_S)
        self._pump_thread.join(timeout=STOP_TIMEOUT_S)
        self._process.stdout.close()
        return exit_code

    def stop(self):
        """Sends SIGTERM and returns the exit code."""
        self._process.terminate()
        return self.wait()


class ReflectionClient:
    """Asks a server's reflection service (`service`, with the messages of
    its version); one request per stream."""

    def __init__(self, channel, service, messages):
        self._messages = messages
        request_class = messages.ServerReflectionRequest
        response_class = messages.ServerReflectionResponse
        self._info = channel.stream_stream(
            "/%s/ServerReflectionInfo" % service,
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString)

    def ask_raw(self, **request_fields):
        """The one answer to one request, errors included."""
        request = self._messages.ServerReflectionRequest(**request_fields)
        responses = list(self._info(iter([request]), timeout=RPC_TIMEOUT_S))
        assert len(responses) == 1, responses
        return responses[0]

    def ask(self, **request_fields):
        response = self.ask_raw(**request_fields)
        if response.HasField("error_response"):
            raise LookupError("reflection error %s" % response.error_response)
        return response

    def services(self):
        response = self.ask(list_services="")
        return [s.name for s in response.list_services_response.service]

    def file_protos(self, **request_fields):
        """The FileDescriptorProtos of one answer, by file name."""
        response = self.ask(**request_fields)
        protos = {}
        for data in response.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(data)
            protos[proto.name] = proto
        return protos

    def pool_with_symbol(self, symbol):
        """A fresh descriptor pool holding `symbol` and everything it needs."""
        protos = self.file_protos(file_containing_symbol=symbol)
        pool = descriptor_pool.DescriptorPool()
        added = set()

        def add(name):
            if name in added:
                return
            if name not in protos:
                protos.update(self.file_protos(file_by_filename=name))
            for dependency in protos[name].dependency:
                add(dependency)
            pool.Add(protos[name])
            added.add(name)

        for name in list(protos):
            add(name)
        return pool


class HealthClient:
    """grpc.health.v1.Health/Check by service name."""

    def __init__(self, channel, messages):
        self._messages = messages
        self._check = channel.unary_unary(
            "/%s/Check" % HEALTH,
            request_serializer=messages.HealthCheckRequest.SerializeToString,
            response_deserializer=messages.HealthCheckResponse.FromString)

    def status(self, service):
        """The status name (SERVING, NOT_SERVING, ...) of `service`."""
        response = self._check(self._messages.HealthCheckRequest(
            service=service), timeout=RPC_TIMEOUT_S)
        return self._messages.HealthCheckResponse.ServingStatus.Name(
            response.status)


class ReflectionTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        v1alpha, v1, health = MESSAGES
        cls._server = ServerProcess(SERVER_BINARY)
        cls._channel = grpc.insecure_channel(cls._server.address)
        cls._reflection = ReflectionClient(cls._channel, REFLECTION_V1ALPHA,
                                           v1alpha)
        cls._reflection_v1 = ReflectionClient(cls._channel, REFLECTION_V1, v1)
        cls._health = HealthClient(cls._channel, health)

    @classmethod
    def tearDownClass(cls):
        cls._channel.close()
        exit_code = cls._server.stop()
        if exit_code != 0:
            raise AssertionError("remex-server exited with %d" % exit_code)

    def call(self, service, method_name, request_json):
        return call_json(self._channel, service, method_name, request_json)

    def test_lists_services(self):
        for reflection in (self._reflection, self._reflection_v1):
            services = reflection.services()
            for name in (EXECUTOR, HEALTH, REFLECTION_V1ALPHA, REFLECTION_V1):
                self.assertIn(name, services)

    def test_v1_file_containing_symbol_brings_its_imports(self):
        protos = self._reflection_v1.file_protos(
            file_containing_symbol=EXECUTOR)
        self.assertIn("remex/v1/executor.proto", protos)
        executor_proto = protos["remex/v1/executor.proto"]
        services = {s.name: s for s in executor_proto.service}
        methods = [m.name for m in services["Executor"].method]
        for method in ("Submit", "Await", "Cancel", "Get", "List", "Session"):
            self.assertIn(method, methods)
        # Each import comes in the same answer.
        for dependency in executor_proto.dependency:
            self.assertIn(dependency, protos)

    def test_v1_and_v1alpha_give_the_same_files(self):
        self.assertEqual(
            self._reflection_v1.file_protos(file_containing_symbol=EXECUTOR),
            self._reflection.file_protos(file_containing_symbol=EXECUTOR))

    def test_v1_resolves_a_message_type(self):
        pool = self._reflection_v1.pool_with_symbol("remex.v1.SubmitRequest")
        request = pool.FindMessageTypeByName("remex.v1.SubmitRequest")
        self.assertIn("function", request.fields_by_name)
        self.assertEqual(
            request.fields_by_name["args"].message_type.full_name,
            "google.protobuf.Value")
        # A message built from the descriptors parses JSON as the server's.
        built = json_format.Parse('{"function": "echo", "priority": 3}',
                                  message_class(request)())
        self.assertEqual(built.priority, 3)

    def test_v1_file_by_filename(self):
        protos = self._reflection_v1.file_protos(
            file_by_filename="remex/v1/executor.proto")
        self.assertEqual(protos["remex/v1/executor.proto"].package,
                         "remex.v1")

    def test_v1_unknown_symbol_is_not_found(self):
        response = self._reflection_v1.ask_raw(
            file_containing_symbol="remex.v1.NoSuchThing")
        self.assertTrue(response.HasField("error_response"))
        self.assertEqual(response.error_response.error_code,
                         grpc.StatusCode.NOT_FOUND.value[0])
        self.assertEqual(response.original_request.file_containing_symbol,
                         "remex.v1.NoSuchThing")

    def test_health_serves_the_server_and_the_executor(self):
        self.assertEqual(self._health.status(""), "SERVING")
        self.assertEqual(self._health.status(EXECUTOR), "SERVING")
        with self.assertRaises(grpc.RpcError) as raised:
            self._health.status("no.such.Service")
        self.assertEqual(raised.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_submit_and_await_with_json(self):
        pool = self._reflection_v1.pool_with_symbol(EXECUTOR)
        executor = pool.FindServiceByName(EXECUTOR)

        task = self.call(executor, "Submit",
                         {"function": "echo", "args": {"x": 1}})
        self.assertTrue(task["id"])
        self.assertIn(task["state"], ("QUEUED", "RUNNING", "SUCCEEDED"))

        done = self.call(executor, "Await",
                         {"id": task["id"], "timeout": "5s"})
        self.assertEqual(done["state"], "SUCCEEDED")
        self.assertEqual(done["result"], {"x": 1})


class DrainingHealthTest(unittest.TestCase):
    """While the server drains after SIGTERM, health says NOT_SERVING for
    both names."""

    def test_not_serving_for_both_names_while_draining(self):
        _, v1, health_messages = MESSAGES
        server = ServerProcess(SERVER_BINARY, ["--shutdown-grace", "60s"])
        channel = grpc.insecure_channel(server.address)
        try:
            health = HealthClient(channel, health_messages)
            self.assertEqual(health.status(EXECUTOR), "SERVING")
            executor = ReflectionClient(
                channel, REFLECTION_V1,
                v1).pool_with_symbol(EXECUTOR).FindServiceByName(EXECUTOR)
            # A running sleep keeps the server draining (it gets the grace)
            # until the test cancels it.
            task = call_json(channel, executor, "Submit",
                             {"function": "sleep", "args": {"ms": 60000}})
            wait_until(
                lambda: call_json(channel, executor, "Get",
                                  {"id": task["id"]})["state"] == "RUNNING",
                RPC_TIMEOUT_S, "the sleep to run")
            server.signal(signal.SIGTERM)
            wait_until(lambda: health.status("") == "NOT_SERVING",
                       RPC_TIMEOUT_S, "health NOT_SERVING")
            self.assertEqual(health.status(EXECUTOR), "NOT_SERVING")
            call_json(channel, executor, "Cancel", {"id": task["id"]})
        finally:
            channel.close()
            exit_code = server.stop()
        self.assertEqual(exit_code, 0)


def main():
    global SERVER_BINARY, GRPC_PROTO_DIR, MESSAGES
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    SERVER_BINARY = sys.argv[1]
    GRPC_PROTO_DIR = sys.argv[2]
    with tempfile.TemporaryDirectory() as temp_dir:
        MESSAGES = load_messages(temp_dir)
        unittest.main(argv=sys.argv[:1], verbosity=2)


if __name__ == "__main__":
    main()
