"""Bearer tokens (--auth) and TLS (--tls-cert, --tls-key) from the client."""

from __future__ import annotations

import subprocess

import grpc
import pytest

import remex
from conftest import token_sha256

ALICE = "alice-token-0123456789"
BOB = "bob-token-0123456789"


@pytest.fixture(scope="module")
def auth_server(start_server, tmp_path_factory):
    path = tmp_path_factory.mktemp("auth") / "auth.yaml"
    path.write_text(
        "principals:\n"
        f"  - name: alice\n    token_sha256: {token_sha256(ALICE)}\n"
        "    roles: [submit, read]\n    functions: [\"echo\", \"sleep\"]\n"
        f"  - name: bob\n    token_sha256: {token_sha256(BOB)}\n"
        "    roles: [submit, read]\n")
    return start_server("--auth", str(path))


def test_token_names_the_owner(auth_server) -> None:
    with remex.Client(auth_server.address, token=ALICE) as alice:
        future = alice.submit("echo", {"who": "alice"})
        assert future.result(timeout=10) == {"who": "alice"}
        assert future.task.owner == "alice"
        assert alice.get(future.id).owner == "alice"
        with remex.Client(auth_server.address, token=BOB) as bob:
            with pytest.raises(remex.RpcError) as caught:
                bob.get(future.id)
            assert caught.value.code is grpc.StatusCode.NOT_FOUND
            assert future.id not in {t.id for t in bob.tasks()}


def test_no_or_bad_token_is_unauthenticated(auth_server) -> None:
    for token in (None, "not-a-token"):
        with remex.Client(auth_server.address, token=token) as client:
            with pytest.raises(remex.RpcError) as caught:
                client.submit("echo", 1).result(timeout=10)
            assert caught.value.code is grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(remex.RpcError) as unary:
                client.functions()
            assert unary.value.code is grpc.StatusCode.UNAUTHENTICATED


def test_function_outside_the_globs_is_permission_denied(auth_server) -> None:
    with remex.Client(auth_server.address, token=ALICE) as alice:
        with pytest.raises(remex.RpcError) as caught:
            alice.submit("fail", {"message": "x"}).result(timeout=10)
        assert caught.value.code is grpc.StatusCode.PERMISSION_DENIED
        # The session goes on after a refused item.
        assert alice.submit("echo", 2).result(timeout=10) == 2


def _openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=remex-test-ca", "-keyout", "ca.key",
             "-out", "ca.pem", cwd=directory)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", "server.key", "-out", "server.csr", cwd=directory)
    (directory / "ext.cnf").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
             "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
             "-extfile", "ext.cnf", "-out", "server.pem", cwd=directory)
    return directory


def test_tls_with_a_root_ca(start_server, tls_files) -> None:
    server = start_server("--tls-cert", str(tls_files / "server.pem"),
                          "--tls-key", str(tls_files / "server.key"))
    tls = remex.TLS(root_ca=str(tls_files / "ca.pem"))
    with remex.Client(server.address, tls=tls) as client:
        assert client.submit("echo", "over tls").result(10) == "over tls"
        assert client.functions().functions
    pem = (tls_files / "ca.pem").read_bytes()
    with remex.Client(server.address, tls=remex.TLS(root_ca=pem)) as client:
        assert client.submit("echo", 1).result(10) == 1
    # Plaintext to a TLS port fails the future, it does not hang.
    with remex.Client(server.address) as plain:
        with pytest.raises(remex.RpcError):
            plain.submit("echo", 1).result(timeout=30)


def test_mtls_client_certificate_is_the_principal(start_server,
                                                  tls_files) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=ci-runner",
             "-keyout", "client.key", "-out", "client.csr", cwd=tls_files)
    _openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem",
             "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
             "-out", "client.pem", cwd=tls_files)
    server = start_server("--tls-cert", str(tls_files / "server.pem"),
                          "--tls-key", str(tls_files / "server.key"),
                          "--tls-client-ca", str(tls_files / "ca.pem"))
    tls = remex.TLS(root_ca=str(tls_files / "ca.pem"),
                    cert=str(tls_files / "client.pem"),
                    key=str(tls_files / "client.key"))
    with remex.Client(server.address, tls=tls) as client:
        future = client.submit("echo", "mtls")
        assert future.result(timeout=10) == "mtls"
        assert future.task.owner == "ci-runner"
    with pytest.raises(ValueError):
        remex.TLS(cert=str(tls_files / "client.pem")).credentials()
