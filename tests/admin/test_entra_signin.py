"""msal, unpatched, against the authority stand-in: device code with a persistent token cache, client secret and
certificate app-only sign-in, and the messages when sign-in fails."""

import datetime
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from scim.admin.entra.signin import DEFAULT_PUBLIC_CLIENT_ID
from tests.admin.conftest import APP_ID, Entra
from tests.standins.authority import ADMIN_UPN, DEVICE_CODE_GRANT, ConfidentialApp


def test_device_code_sign_in_prompts_once_then_the_cache_signs_in_silently(entra: Entra, monkeypatch):
    monkeypatch.delenv("SCIM_ENTRA_CLIENT_SECRET")
    entra.authority.public_clients.add(DEFAULT_PUBLIC_CLIENT_ID)
    entra.authority.pending_polls = 1

    first = entra.run("login", app_only=False)
    assert first.code == 0, first.text
    assert "To sign in, use a web browser to open the page https://microsoft.com/devicelogin" in first.err
    assert f"as {ADMIN_UPN}" in first.out
    assert entra.authority.grants["devicecode"] == 1
    assert entra.authority.grants[DEVICE_CODE_GRANT] == 2  # one authorization_pending, then the tokens
    assert stat.S_IMODE(entra.cache.stat().st_mode) == 0o600
    assert "refresh_token" not in first.text and "RefreshToken" in entra.cache.read_text()

    second = entra.run("login", app_only=False)
    assert second.code == 0, second.text
    assert "devicelogin" not in second.err
    assert entra.authority.grants["devicecode"] == 1
    assert entra.authority.grants[DEVICE_CODE_GRANT] == 2


def test_an_expiring_access_token_is_refreshed_from_the_cache_without_a_prompt(entra: Entra, monkeypatch):
    monkeypatch.delenv("SCIM_ENTRA_CLIENT_SECRET")
    entra.authority.public_clients.add(DEFAULT_PUBLIC_CLIENT_ID)
    entra.authority.token_lifetime = 60  # msal refreshes tokens with less than 5 minutes left
    assert entra.run("login", app_only=False).code == 0
    again = entra.run("login", app_only=False)
    assert again.code == 0, again.text
    assert entra.authority.grants["devicecode"] == 1
    assert entra.authority.grants["refresh_token"] == 1


def test_delegated_sign_in_asks_for_the_commands_least_privileged_scopes(entra: Entra, monkeypatch):
    monkeypatch.delenv("SCIM_ENTRA_CLIENT_SECRET")
    entra.authority.public_clients.add(DEFAULT_PUBLIC_CLIENT_ID)
    entra.graph.add_logs("00000000-0000-0000-0000-000000000000", 0)
    result = entra.run("status", app_only=False)
    (requested,) = entra.authority.scopes_requested
    graph_scopes = sorted(scope.rsplit("/", 1)[1] for scope in requested if "/" in scope)
    assert graph_scopes == ["Application.Read.All", "Synchronization.Read.All"]
    assert result.code == 1, result.text  # no app of that name yet: the calls themselves were allowed
    assert "No enterprise app is named 'SCIM endpoint'" in result.err


def test_client_secret_app_only(entra: Entra):
    result = entra.run("login")
    assert result.code == 0, result.text
    assert f"app {APP_ID} (app-only)" in result.out
    assert entra.authority.grants["client_credentials"] == 1
    assert not entra.cache.exists()  # app-only tokens are not written to disk


def test_a_wrong_client_secret_is_named_and_not_printed(entra: Entra, monkeypatch):
    monkeypatch.setenv("SCIM_ENTRA_CLIENT_SECRET", "wrong-secret-value-123")
    result = entra.run("status")
    assert result.code == 2
    assert "Sign-in failed (invalid_client): AADSTS7000215: Invalid client secret provided." in result.err
    assert "wrong-secret-value-123" not in result.text


def test_client_secret_from_stdin(entra: Entra, monkeypatch):
    monkeypatch.delenv("SCIM_ENTRA_CLIENT_SECRET")
    result = entra.run("login", "--client-secret-stdin", stdin=entra.client_secret + "\n")
    assert result.code == 0, result.text
    assert entra.client_secret not in result.text


def _certificate(directory: Path) -> tuple[Path, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "scim-ci")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = directory / "ci.pem"
    path.write_bytes(key_pem + cert_pem)
    return path, cert_pem


def test_certificate_app_only_signs_a_client_assertion_the_authority_verifies(entra: Entra, tmp_path, monkeypatch):
    monkeypatch.delenv("SCIM_ENTRA_CLIENT_SECRET")
    path, cert_pem = _certificate(tmp_path)
    entra.authority.confidential[APP_ID] = ConfidentialApp(roles=["Application.Read.All"], certificate_pem=cert_pem)
    result = entra.run("login", "--certificate", str(path))
    assert result.code == 0, result.text
    assert entra.authority.grants["client_credentials"] == 1


def test_a_certificate_the_app_does_not_have_is_refused(entra: Entra, tmp_path, monkeypatch):
    monkeypatch.delenv("SCIM_ENTRA_CLIENT_SECRET")
    path, _ = _certificate(tmp_path)
    _, other = _certificate(tmp_path / "..")
    entra.authority.confidential[APP_ID] = ConfidentialApp(roles=[], certificate_pem=other)
    result = entra.run("login", "--certificate", str(path))
    assert result.code == 2
    assert "Sign-in failed (invalid_client): AADSTS700027" in result.err


def test_a_pem_without_a_certificate_is_explained(entra: Entra, tmp_path, monkeypatch):
    monkeypatch.delenv("SCIM_ENTRA_CLIENT_SECRET")
    path = tmp_path / "key-only.pem"
    path.write_text("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n")
    result = entra.run("login", "--certificate", str(path))
    assert result.code == 2
    assert "must be a PEM file holding both the private key and its certificate" in result.err


@pytest.mark.parametrize(
    ("cloud", "graph"), [("usgov", "https://graph.microsoft.us"), ("china", "https://microsoftgraph.chinacloudapi.cn")]
)
def test_sovereign_clouds_pair_sign_in_and_graph_hosts(cloud, graph):
    from scim.admin.entra.clouds import resolve

    chosen = resolve(cloud)
    assert chosen.graph_endpoint == graph
    assert chosen.app_only_scope == f"{graph}/.default"
    assert resolve(cloud, graph_endpoint="https://127.0.0.1:1/").graph_endpoint == "https://127.0.0.1:1"


def test_an_unknown_tenant_is_a_sentence_not_a_traceback(entra: Entra):
    result = entra.run("status", "--tenant", "no-such-tenant.example")
    assert result.code == 2
    assert "Could not use the sign-in service" in result.err and "no-such-tenant.example" in result.err
    assert "Check --tenant (a tenant id or domain)" in result.err
    assert "Traceback" not in result.err


def test_an_untrusted_certificate_gets_the_ca_bundle_hint(entra: Entra, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    result = entra.run("status")
    assert result.code == 2
    assert "CERTIFICATE_VERIFY_FAILED" in result.err
    assert "point REQUESTS_CA_BUNDLE at its CA" in result.err
