"""Channels to remex-server: address, bearer token, TLS."""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Tuple, Union

import grpc

# As the server's and the C++ SDK's limit (client/channel.h).
MAX_MESSAGE_BYTES = 64 << 20

Metadata = Tuple[Tuple[str, str], ...]


def _read(data: Union[None, str, bytes]) -> Optional[bytes]:
    """PEM given as bytes is used as is; a str names a file."""
    if data is None or isinstance(data, bytes):
        return data
    with open(data, "rb") as pem:
        return pem.read()


@dataclasses.dataclass(frozen=True)
class TLS:
    """TLS to the server.

    Attributes:
      root_ca: the CA that signed the server's certificate (a PEM file path,
        or PEM bytes); None: the system's roots.
      cert, key: the client certificate and key for mTLS (paths or PEM
        bytes); both or neither.
      server_name: the name to check the server's certificate against when
        it differs from the address's host.
    """

    root_ca: Union[None, str, bytes] = None
    cert: Union[None, str, bytes] = None
    key: Union[None, str, bytes] = None
    server_name: Optional[str] = None

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.cert is None) != (self.key is None):
            raise ValueError("remex: TLS needs both cert and key, or neither")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.root_ca),
            private_key=_read(self.key),
            certificate_chain=_read(self.cert))


TLSOption = Union[None, bool, TLS]


def channel_options(tls: TLSOption, extra: Sequence[Tuple[str, object]] = ()
                    ) -> list:
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # A server that hangs with its connection open fails the stream
        # instead of leaving futures waiting forever (as the C++ SDK).
        ("grpc.keepalive_time_ms", 20000),
        ("grpc.keepalive_timeout_ms", 10000),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    if isinstance(tls, TLS) and tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    options.extend(extra)
    return options


def _credentials(tls: TLSOption) -> Optional[grpc.ChannelCredentials]:
    if tls is None or tls is False:
        return None
    if tls is True:
        return grpc.ssl_channel_credentials()
    if isinstance(tls, TLS):
        return tls.credentials()
    raise TypeError("remex: tls must be None, True or a remex.TLS")


def make_channel(address: str, tls: TLSOption,
                 extra: Sequence[Tuple[str, object]] = ()) -> grpc.Channel:
    credentials = _credentials(tls)
    options = channel_options(tls, extra)
    if credentials is None:
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, credentials, options=options)


def make_aio_channel(address: str, tls: TLSOption,
                     extra: Sequence[Tuple[str, object]] = ()):
    credentials = _credentials(tls)
    options = channel_options(tls, extra)
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, credentials, options=options)


def metadata(token: Optional[str]) -> Optional[Metadata]:
    """The call metadata: `authorization: Bearer TOKEN` when a token is set
    (sent on every call, so it works over plaintext loopback as well)."""
    if not token:
        return None
    return (("authorization", "Bearer " + token),)
