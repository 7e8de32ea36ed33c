"""The outbound policy (synthtune.outbound): one test per rule, and the connection-time check."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess

import httpx
import pytest

from datagen_svc.config import load_settings
from synthtune.errors import InvalidArgument
from synthtune.outbound import DEFAULT_DENY, OutboundPolicy, OutboundRefused, guarded_transport, parse_rules
from synthtune.settings import SettingsError
from tests.conftest import require_system_dep
from tests.support.fake_openai import FakeOpenAI

DEFAULT = OutboundPolicy.from_settings()


def refused_field(policy: OutboundPolicy, url: str, field: str = "endpoint.base_url") -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        policy.check_url(url, field=field)
    assert info.value.field == field
    return info.value


@pytest.mark.parametrize("url, network", [
    ("http://169.254.169.254/latest/meta-data", "169.254.0.0/16"),  # AWS, GCP, Azure metadata
    ("http://169.254.1.1:8000/v1", "169.254.0.0/16"),  # any IPv4 link-local
    ("http://100.100.100.200/latest", "100.100.100.200/32"),  # Alibaba metadata
    ("http://0.0.0.0:8000/v1", "0.0.0.0/8"),
    ("http://[fd00:ec2::254]/latest", "fd00:ec2::254/128"),  # AWS metadata over IPv6
    ("http://[fe80::1]:8000/v1", "fe80::/10"),  # IPv6 link-local
    ("http://[::]:8000/v1", "::/128"),
    ("http://[::ffff:169.254.169.254]/v1", "169.254.0.0/16"),  # IPv4-mapped IPv6 is judged as IPv4
])
def test_each_default_denied_network_is_refused_naming_url_network_and_setting(url, network):
    error = refused_field(DEFAULT, url)
    assert url in error.message and network in error.message
    assert "SYNTHTUNE_OUTBOUND_ALLOW" in error.message and "SYNTHTUNE_OUTBOUND_DENY" in error.message


@pytest.mark.parametrize("host", ["metadata.google.internal", "METADATA.google.internal.", "metadata", "instance-data"])
def test_metadata_host_names_are_refused_without_resolving(host, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail("resolved a denied name"))
    error = refused_field(DEFAULT, f"http://{host}/computeMetadata/v1")
    assert "deny entry" in error.message


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/v1", "http://localhost:8000/v1", "http://[::1]:8000/v1",
    "http://10.1.2.3/v1", "http://192.168.0.7/v1", "http://172.16.0.1/v1", "http://[fd12::1]/v1",
    "https://api.openai.com/v1",
])
def test_loopback_private_and_public_addresses_pass_by_default(url, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "",
                                                                 ("127.0.0.1", 80))])
    DEFAULT.check_url(url, field="endpoint.base_url")


def fake_dns(monkeypatch, table: dict[str, list[str]]) -> None:
    def getaddrinfo(host, port, *args, **kwargs):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in table[host]]
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_name_resolving_to_a_denied_address_is_refused(monkeypatch):
    fake_dns(monkeypatch, {"teacher.example.com": ["169.254.169.254"]})
    error = refused_field(DEFAULT, "https://teacher.example.com/v1")
    assert "resolves to 169.254.169.254" in error.message and "169.254.0.0/16" in error.message


def test_every_resolved_address_must_pass_not_just_the_first(monkeypatch):
    fake_dns(monkeypatch, {"teacher.example.com": ["93.184.216.34", "fd00:ec2::254"]})
    error = refused_field(DEFAULT, "https://teacher.example.com/v1", field="filters.judge.endpoint.base_url")
    assert "fd00:ec2::254" in error.message and "filters.judge.endpoint.base_url" in error.message


def test_deny_entries_add_to_the_defaults(monkeypatch):
    fake_dns(monkeypatch, {"vllm.ml.svc.cluster.local": ["10.96.0.12"], "gw.corp.example": ["203.0.113.5"]})
    policy = OutboundPolicy.from_settings(deny="10.0.0.0/8, .corp.example")
    assert "10.0.0.0/8" in refused_field(policy, "http://10.1.2.3:8000/v1").message
    assert "10.0.0.0/8" in refused_field(policy, "http://vllm.ml.svc.cluster.local:8000/v1").message
    assert ".corp.example" in refused_field(policy, "https://gw.corp.example/v1").message
    assert "169.254.0.0/16" in refused_field(policy, "http://169.254.169.254/").message  # defaults stay
    policy.check_url("http://127.0.0.1:8000/v1", field="endpoint.base_url")


def test_an_allow_list_means_only_those(monkeypatch):
    fake_dns(monkeypatch, {"api.openai.com": ["162.159.140.245"], "teacher.lab": ["192.0.2.9"]})
    policy = OutboundPolicy.from_settings(allow="127.0.0.0/8, *.openai.com")
    policy.check_url("http://127.0.0.1:8000/v1", field="endpoint.base_url")
    policy.check_url("https://api.openai.com/v1", field="endpoint.base_url")  # by name
    assert "in no allow entry" in refused_field(policy, "http://teacher.lab/v1").message
    assert "in no allow entry" in refused_field(policy, "http://10.0.0.1/v1").message
    assert "does not resolve" in refused_field(policy, "http://nowhere.lab/v1").message


def test_an_allow_list_never_lets_a_denied_address_through():
    policy = OutboundPolicy.from_settings(allow="169.254.0.0/16, metadata.google.internal")
    refused_field(policy, "http://169.254.169.254/")
    refused_field(policy, "http://metadata.google.internal/")


def test_a_name_that_does_not_resolve_passes_validation_without_an_allow_list(monkeypatch):
    fake_dns(monkeypatch, {})
    DEFAULT.check_url("http://teacher.invalid/v1", field="endpoint.base_url")  # checked again on connect


@pytest.mark.parametrize("text", ["10.0.0.1/8", "10.0.0.0/33", "fd00::zz", "not a host", "http://x"])
def test_bad_entries_fail_naming_the_variable(text):
    with pytest.raises(ValueError, match="SYNTHTUNE_OUTBOUND_DENY"):
        parse_rules(text, variable="SYNTHTUNE_OUTBOUND_DENY")


def test_the_settings_fail_fast_on_a_bad_entry(tmp_path):
    with pytest.raises(SettingsError, match="SYNTHTUNE_OUTBOUND_ALLOW"):
        load_settings(data_root=tmp_path, grpc_token="x" * 20, outbound_allow="10.0.0.1/8")
    settings = load_settings(data_root=tmp_path, grpc_token="x" * 20, outbound_deny=" 10.0.0.0/8 ,, fc00::/7")
    assert settings.outbound_deny == "10.0.0.0/8,fc00::/7"
    assert len(settings.outbound_policy.deny.networks) == len(parse_rules(DEFAULT_DENY, variable="x").networks) + 2


class _Listener:
    """A TCP port that counts the connections it accepts."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]

    def accepted(self) -> int:
        count = 0
        try:
            while True:
                conn, _ = self.sock.accept()
                conn.close()
                count += 1
        except TimeoutError:
            return count


def test_each_connection_is_checked_again_when_the_name_now_resolves_to_a_denied_address():
    """Validation passed; later the name resolves to a denied address (a DNS change, or rebinding):
    the guarded transport refuses before connecting, and connects only to the addresses it checked."""
    listener = _Listener()
    policy = OutboundPolicy.from_settings(deny="127.0.0.0/8")

    async def call(host: str) -> None:
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(transport=guarded_transport(policy, limits=limits)) as client:
            await client.get(f"http://{host}:{listener.port}/v1/models", timeout=2)

    for host in ("localhost", "127.0.0.1"):  # a name resolved at connect time, and a literal
        with pytest.raises(OutboundRefused, match="127.0.0.0/8"):
            asyncio.run(call(host))
    assert listener.accepted() == 0
    listener.sock.close()


def test_tls_through_the_guarded_transport_verifies_the_url_host_not_the_pinned_address(tmp_path):
    """The transport connects to the checked IP; the certificate must still be checked against the name."""
    require_system_dep(shutil.which("openssl") is not None, "openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    trusted = ssl.create_default_context(cafile=str(cert))

    async def models(url: str) -> int:
        transport = guarded_transport(DEFAULT, verify=trusted, limits=httpx.Limits(max_connections=1))
        async with httpx.AsyncClient(transport=transport) as client:
            return (await client.get(url, timeout=5)).status_code

    with FakeOpenAI(tls=(cert, key)) as fake:
        by_name = fake.base_url.replace("127.0.0.1", "localhost")
        assert asyncio.run(models(by_name + "/models")) == 200
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
            asyncio.run(models(fake.base_url + "/models"))  # the cert names localhost, not 127.0.0.1


def test_a_bad_port_is_invalid_argument_not_a_crash():
    assert "check the port" in refused_field(DEFAULT, "http://h:99999/v1", field="judge.base_url").message
