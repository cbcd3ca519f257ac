#!/usr/bin/env python3
"""A generic gRPC client with no remex .proto files talks to remex-server.

It learns the API through server reflection (grpc.reflection.v1alpha), builds
the message classes from the descriptors the server sends, and calls Submit
and Await with JSON, as grpcurl does.

Usage: reflection_test.py PATH_TO_REMEX_SERVER
"""

import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
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
REFLECTION_METHOD = (
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
SERVER_BINARY = None  # Set from argv in main().


def load_reflection_messages(out_dir):
    """Generates Python messages for reflection.proto and imports them."""
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I" + HERE,
         "--python_out=" + out_dir, os.path.join(HERE, "reflection.proto")],
        check=True, timeout=60)
    sys.path.insert(0, out_dir)
    import reflection_pb2  # pylint: disable=import-outside-toplevel
    return reflection_pb2


def message_class(descriptor):
    """The message class for `descriptor`, on old and new protobuf alike."""
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(descriptor.file.pool).GetPrototype(
        descriptor)


class ServerProcess:
    """remex-server on 127.0.0.1, an ephemeral port; stopped by stop()."""

    def __init__(self, binary):
        self._process = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--metrics-listen", "none"],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True)
        self._lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
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

    def stop(self):
        """Sends SIGTERM and returns the exit code."""
        self._process.terminate()
        return self._process.wait(timeout=STOP_TIMEOUT_S)


class ReflectionClient:
    """Asks a server's reflection service; one request per stream."""

    def __init__(self, channel, messages):
        self._messages = messages
        request_class = messages.ServerReflectionRequest
        response_class = messages.ServerReflectionResponse
        self._info = channel.stream_stream(
            REFLECTION_METHOD,
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString)

    def ask(self, **request_fields):
        request = self._messages.ServerReflectionRequest(**request_fields)
        responses = list(self._info(iter([request]), timeout=RPC_TIMEOUT_S))
        assert len(responses) == 1, responses
        response = responses[0]
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


class ReflectionTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls._temp_dir = tempfile.TemporaryDirectory()
        messages = load_reflection_messages(cls._temp_dir.name)
        cls._server = ServerProcess(SERVER_BINARY)
        cls._channel = grpc.insecure_channel(cls._server.address)
        cls._reflection = ReflectionClient(cls._channel, messages)

    @classmethod
    def tearDownClass(cls):
        cls._channel.close()
        exit_code = cls._server.stop()
        cls._temp_dir.cleanup()
        if exit_code != 0:
            raise AssertionError("remex-server exited with %d" % exit_code)

    def call(self, service, method_name, request_json):
        """Calls a method with a JSON request; returns the JSON answer."""
        method = service.methods_by_name[method_name]
        request_class = message_class(method.input_type)
        response_class = message_class(method.output_type)
        stub = self._channel.unary_unary(
            "/%s/%s" % (service.full_name, method_name),
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString)
        request = json_format.Parse(json.dumps(request_json), request_class())
        response = stub(request, timeout=RPC_TIMEOUT_S)
        return json.loads(json_format.MessageToJson(response))

    def test_lists_services(self):
        services = self._reflection.services()
        for name in ("remex.v1.Executor", "grpc.health.v1.Health",
                     "grpc.reflection.v1alpha.ServerReflection"):
            self.assertIn(name, services)

    def test_submit_and_await_with_json(self):
        pool = self._reflection.pool_with_symbol("remex.v1.Executor")
        executor = pool.FindServiceByName("remex.v1.Executor")

        task = self.call(executor, "Submit",
                         {"function": "echo", "args": {"x": 1}})
        self.assertTrue(task["id"])
        self.assertIn(task["state"], ("QUEUED", "RUNNING", "SUCCEEDED"))

        done = self.call(executor, "Await",
                         {"id": task["id"], "timeout": "5s"})
        self.assertEqual(done["state"], "SUCCEEDED")
        self.assertEqual(done["result"], {"x": 1})


def main():
    global SERVER_BINARY
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    SERVER_BINARY = sys.argv[1]
    unittest.main(argv=sys.argv[:1], verbosity=2)


if __name__ == "__main__":
    main()
