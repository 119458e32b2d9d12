"""Server TLS credentials from PEM files, checked up front so that a wrong path or a key that does
not match its certificate stops `serve` with a message instead of failing every handshake."""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from timestep.settings import ConfigurationError


class TlsConfigError(ConfigurationError):
    """The TLS files cannot be used; the message names the file and the problem."""


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise TlsConfigError(f"cannot read the {what} {path}: {error.strerror or error}") from error


def server_credentials(
    cert_file: str | None, key_file: str | None, client_ca_file: str | None = None
) -> grpc.ServerCredentials | None:
    """TLS credentials, or None (plaintext) when no file is given. With `client_ca_file`, clients
    must present a certificate signed by that CA (mTLS)."""
    if not (cert_file or key_file or client_ca_file):
        return None
    if not cert_file or not key_file:
        raise TlsConfigError("TLS needs both a certificate (--tls-cert) and its private key (--tls-key).")
    certificate = _read(cert_file, "TLS certificate")
    key = _read(key_file, "TLS private key")
    client_ca = _read(client_ca_file, "client CA certificate") if client_ca_file else None
    # gRPC only parses these at the first handshake; the ssl module checks them now.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as error:
        raise TlsConfigError(
            f"the TLS certificate {cert_file} and private key {key_file} cannot be used together "
            f"(are they PEM files of the same key pair?): {error.reason or error}"
        ) from error
    if client_ca_file:
        try:
            context.load_verify_locations(client_ca_file)
        except ssl.SSLError as error:
            raise TlsConfigError(
                f"the client CA {client_ca_file} is not a PEM certificate: {error.reason or error}"
            ) from error
    return grpc.ssl_server_credentials(
        [(key, certificate)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
