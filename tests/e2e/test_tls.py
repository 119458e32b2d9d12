"""TLS and mTLS with certificates made by the test: the real service on a TLS port, the real
client (and the `timestep` command) with and without the right certificates."""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from timestep.api.auth import ApiKeys, hash_key
from timestep.api.tls import TlsConfigError, server_credentials
from timestep.app import TimestepService
from timestep.commands.output import USAGE
from timestep.runtime.providers import ModelConfig
from timestep_client import RunStatus, TimestepClient, TlsOptions
from timestep_client.v1 import agents_pb2

from tests.conftest import StartService
from tests.e2e.test_cli import REPO, run_cli
from tests.e2e.test_cli_commands import timestep
from timestep_testing.fakes.openai_responses import FakeOpenAI, text
from timestep_testing.helpers import WAIT, expect_rpc_error


@dataclass(frozen=True)
class Pem:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(directory: Path, stem: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pem:
    pem = Pem(directory / f"{stem}.crt", directory / f"{stem}.key")
    pem.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    pem.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return pem


def _builder(
    subject: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def make_ca(directory: Path, name: str) -> Pem:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        _builder(name, _name(name), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _write(directory, name, certificate, key)


def issue(directory: Path, ca: Pem, name: str, *, server: bool) -> Pem:
    """A leaf certificate signed by `ca`: for 127.0.0.1 and localhost (`server`), else a client's."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(name, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return _write(directory, name, builder.sign(ca_key, hashes.SHA256()), key)


@dataclass(frozen=True)
class Certificates:
    ca: Pem
    server: Pem
    client: Pem
    # A client certificate from a CA the server does not trust.
    stranger: Pem


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    ca = make_ca(tmp_path, "timestep-test-ca")
    other_ca = make_ca(tmp_path, "other-ca")
    return Certificates(
        ca=ca,
        server=issue(tmp_path, ca, "server", server=True),
        client=issue(tmp_path, ca, "client", server=False),
        stranger=issue(tmp_path, other_ca, "stranger", server=False),
    )


@pytest.fixture
async def tls_service(
    start_service: StartService, model_config: ModelConfig, certificates: Certificates
) -> AsyncIterator[TimestepService]:
    """TLS without client certificates."""
    async with start_service(
        model_config, tls_cert_file=str(certificates.server.cert), tls_key_file=str(certificates.server.key)
    ) as running:
        yield running


@pytest.fixture
async def mtls_service(
    start_service: StartService, model_config: ModelConfig, certificates: Certificates
) -> AsyncIterator[TimestepService]:
    """TLS that requires client certificates signed by the test CA."""
    async with start_service(
        model_config,
        tls_cert_file=str(certificates.server.cert),
        tls_key_file=str(certificates.server.key),
        tls_client_ca_file=str(certificates.ca.cert),
    ) as running:
        yield running


def address(service: TimestepService) -> str:
    return f"127.0.0.1:{service.port}"


async def agent_names(client: TimestepClient) -> list[str]:
    return sorted(agent.name for agent in await client.list_agents())


async def test_a_tls_client_that_trusts_the_ca_is_served(
    tls_service: TimestepService, certificates: Certificates
) -> None:
    tls = TlsOptions.from_files(str(certificates.ca.cert))
    async with TimestepClient(address(tls_service), tls=tls) as client:
        assert await agent_names(client) == ["assistant", "billing"]


async def test_a_plaintext_client_cannot_talk_to_a_tls_service(tls_service: TimestepService) -> None:
    async with TimestepClient(address(tls_service)) as client:
        await expect_rpc_error(
            client.agents.ListAgents(agents_pb2.ListAgentsRequest(), timeout=WAIT),
            grpc.StatusCode.UNAVAILABLE,
        )


async def test_a_client_that_does_not_trust_the_server_certificate_is_refused(
    tls_service: TimestepService, certificates: Certificates
) -> None:
    other_ca = make_ca(certificates.ca.cert.parent, "unrelated-ca")
    async with TimestepClient(address(tls_service), tls=TlsOptions.from_files(str(other_ca.cert))) as client:
        await expect_rpc_error(
            client.agents.ListAgents(agents_pb2.ListAgentsRequest(), timeout=WAIT),
            grpc.StatusCode.UNAVAILABLE,
        )


async def test_mtls_serves_a_client_with_a_certificate_from_its_ca(
    mtls_service: TimestepService, certificates: Certificates
) -> None:
    tls = TlsOptions.from_files(
        str(certificates.ca.cert), str(certificates.client.cert), str(certificates.client.key)
    )
    async with TimestepClient(address(mtls_service), tls=tls) as client:
        assert await agent_names(client) == ["assistant", "billing"]


@pytest.mark.parametrize("who", ["no-certificate", "certificate-of-another-ca"])
async def test_mtls_refuses_a_client_without_a_trusted_certificate(
    who: str, mtls_service: TimestepService, certificates: Certificates
) -> None:
    if who == "no-certificate":
        tls = TlsOptions.from_files(str(certificates.ca.cert))
    else:
        tls = TlsOptions.from_files(
            str(certificates.ca.cert), str(certificates.stranger.cert), str(certificates.stranger.key)
        )
    async with TimestepClient(address(mtls_service), tls=tls) as client:
        await expect_rpc_error(
            client.agents.ListAgents(agents_pb2.ListAgentsRequest(), timeout=WAIT),
            grpc.StatusCode.UNAVAILABLE,
        )


async def test_the_cli_talks_mtls(
    mtls_service: TimestepService, certificates: Certificates, fake_openai: FakeOpenAI
) -> None:
    ca, client_cert = certificates.ca, certificates.client
    tls = TlsOptions.from_files(str(ca.cert), str(client_cert.cert), str(client_cert.key))
    fake_openai.script(text("Hello over TLS."))
    async with TimestepClient(address(mtls_service), tls=tls) as client:
        run = await client.create_run("assistant", "Say hello.", wait=True, timeout=WAIT)
    assert run.status == RunStatus.RUN_STATUS_COMPLETED, run
    tls_args = ("--tls-ca", str(ca.cert), "--tls-cert", str(client_cert.cert))
    key_args = ("--tls-key", str(client_cert.key))

    listed = await timestep(address(mtls_service), "--json", "runs", "list", *tls_args, *key_args)
    without_key = await timestep(address(mtls_service), "runs", "list", *tls_args)
    plaintext = await timestep(address(mtls_service), "runs", "list")

    assert listed.code == 0, listed.stderr
    assert run.id in [listed_run["id"] for listed_run in listed.json()["runs"]], listed.stdout
    assert without_key.code == 2, without_key.stderr
    assert "--tls-cert and --tls-key go together" in without_key.stderr
    assert plaintext.code == 6, plaintext.stderr  # UNAVAILABLE


# ----- health checks without credentials --------------------------------------------------


async def test_the_health_port_answers_a_plaintext_check_without_credentials_under_mtls(
    start_service: StartService, model_config: ModelConfig, certificates: Certificates
) -> None:
    async with start_service(
        model_config,
        tls_cert_file=str(certificates.server.cert),
        tls_key_file=str(certificates.server.key),
        tls_client_ca_file=str(certificates.ca.cert),
        api_keys=ApiKeys.parse([f"acme:{hash_key('acme-key')}"]),
        authenticate_health=True,
        health_port=0,
    ) as service:
        health_target = f"127.0.0.1:{service.health_port}"
        serving = await timestep(health_target, "health")
        on_the_main_port = await timestep(address(service), "health", "--timeout", "5")
        async with TimestepClient(health_target) as client:  # the health port serves nothing else
            await expect_rpc_error(
                client.agents.ListAgents(agents_pb2.ListAgentsRequest(), timeout=WAIT),
                grpc.StatusCode.UNIMPLEMENTED,
            )
        await service.drain()
        draining = await timestep(health_target, "health")

    assert (serving.code, serving.stdout.strip()) == (0, "SERVING"), serving.stderr
    assert on_the_main_port.code == 6, on_the_main_port.stderr  # no client certificate
    assert (draining.code, draining.stdout.strip()) == (6, "NOT_SERVING"), draining.stderr


def test_the_container_health_check_uses_the_health_port() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    port = re.search(r"TIMESTEP_HEALTH_PORT=(\d+)", dockerfile)
    check = re.search(r'HEALTHCHECK .*?CMD \["timestep", "health", "--target", "([^"]+)"', dockerfile, re.S)

    assert port is not None
    assert check is not None
    assert check.group(1) == f"127.0.0.1:{port.group(1)}"


# ----- bad files -----------------------------------------------------------------------------


def test_bad_tls_files_are_reported_by_name(certificates: Certificates, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.crt")
    server, client = certificates.server, certificates.client
    with pytest.raises(TlsConfigError, match=f"cannot read the TLS certificate {missing}"):
        server_credentials(missing, str(server.key))
    with pytest.raises(TlsConfigError, match="cannot be used together"):
        server_credentials(str(server.cert), str(client.key))  # the key of another certificate
    with pytest.raises(TlsConfigError, match="needs both a certificate"):
        server_credentials(str(server.cert), None)
    with pytest.raises(TlsConfigError, match="is not a PEM certificate"):
        server_credentials(str(server.cert), str(server.key), str(server.key))
    assert server_credentials(None, None) is None


async def test_serve_with_a_mismatched_key_exits_with_a_message(certificates: Certificates) -> None:
    code, _, stderr = await run_cli(
        "serve",
        "--port",
        "0",
        "--tls-cert",
        str(certificates.server.cert),
        "--tls-key",
        str(certificates.client.key),
    )

    assert code == USAGE
    assert "cannot be used together" in stderr
    assert "Traceback" not in stderr
