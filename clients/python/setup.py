"""Builds the remex package; generates remex/v1 from ../../protos first.

The gRPC stubs are never edited by hand nor committed: every build makes them
from protos/remex/v1/executor.proto with protoc and grpc_python_plugin
(Debian's protobuf-compiler and protobuf-compiler-grpc), or, without them,
with grpc_tools.protoc (python3-grpc-tools). $REMEX_PROTOS names another
proto root.
"""

import os
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join("remex", "v1", "executor.proto")
OUT_PACKAGE = os.path.join(HERE, "remex", "v1")


def _proto_root():
    candidates = [os.environ.get("REMEX_PROTOS"),
                  os.path.join(HERE, "..", "..", "protos"),
                  os.path.join(HERE, "protos")]
    for root in candidates:
        if root and os.path.isfile(os.path.join(root, PROTO)):
            return os.path.abspath(root)
    return None


def _protoc_command(proto_root, out_dir):
    protoc = shutil.which("protoc")
    plugin = shutil.which("grpc_python_plugin")
    if protoc and plugin:
        return [protoc, "-I" + proto_root, "-I/usr/include",
                "--python_out=" + out_dir, "--pyi_out=" + out_dir,
                "--grpc_python_out=" + out_dir,
                "--plugin=protoc-gen-grpc_python=" + plugin,
                os.path.join(proto_root, PROTO)]
    return [sys.executable, "-m", "grpc_tools.protoc", "-I" + proto_root,
            "--python_out=" + out_dir, "--grpc_python_out=" + out_dir,
            os.path.join(proto_root, PROTO)]


def generate_stubs():
    """Writes remex/v1/executor_pb2{,_grpc}.py (and .pyi) next to remex/."""
    proto_root = _proto_root()
    if proto_root is None:
        if os.path.isfile(os.path.join(OUT_PACKAGE, "executor_pb2.py")):
            return  # An sdist that carries its generated stubs.
        raise RuntimeError(
            "remex: protos/remex/v1/executor.proto not found; build from the "
            "repository (clients/python) or set REMEX_PROTOS")
    os.makedirs(OUT_PACKAGE, exist_ok=True)
    # protoc writes remex/v1/... under its output root: the package's parent.
    subprocess.run(_protoc_command(proto_root, HERE), check=True)
    with open(os.path.join(OUT_PACKAGE, "__init__.py"), "w",
              encoding="utf-8") as init:
        init.write('"""remex.v1: generated from protos/remex/v1/executor.proto '
                   'at build time."""\n')


class BuildPyWithStubs(build_py):
    """build_py that regenerates the stubs first."""

    def run(self):
        generate_stubs()
        super().run()


# Metadata and egg_info need the package directory to exist as well.
generate_stubs()
setup(cmdclass={"build_py": BuildPyWithStubs})
