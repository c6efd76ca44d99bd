"""The Entra CLI against local stand-ins: an OpenID authority and Microsoft Graph, both HTTPS on 127.0.0.1 with a
throw-away certificate the client trusts through REQUESTS_CA_BUNDLE (as a proxy-inspected network would set it),
and a real ``python -m scim serve`` on Azurite as the SCIM endpoint Graph's provisioning service talks to."""

import io
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scim.admin.entra.cli import Output, main
from tests.local_server import LocalServer
from tests.standins.authority import TENANT_ID, Authority, ConfidentialApp
from tests.standins.graph import Graph
from tests.standins.https_server import certificate_authority
from tests.standins.key_vault import KeyVault

APP_ID = "0f0f0f0f-1111-2222-3333-444444444444"
ALL_ROLES = [
    "Application.ReadWrite.All",
    "Synchronization.ReadWrite.All",
    "AuditLog.Read.All",
    "AppRoleAssignment.ReadWrite.All",
    "User.Read.All",
    "GroupMember.Read.All",
]


@pytest.fixture(scope="session")
def standin_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    cert, key = certificate_authority(tmp_path_factory.mktemp("tls"))
    previous = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = str(cert)
    yield cert, key
    if previous is None:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
    else:
        os.environ["REQUESTS_CA_BUNDLE"] = previous


@pytest.fixture(scope="session")
def scim_server(azurite_connection_string: str) -> Iterator[LocalServer]:
    running = LocalServer(azurite_connection_string, f"entra{secrets.token_hex(4)}")
    running.start()
    yield running
    running.close()


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@dataclass
class Entra:
    """Runs ``python -m scim entra`` commands against the stand-ins, signed in app-only unless told otherwise."""

    authority: Authority
    graph: Graph
    cache: Path
    client_secret: str

    def run(self, *argv: str, stdin: str = "", app_only: bool = True) -> Result:
        out, err = io.StringIO(), io.StringIO()
        sign_in = [
            "--tenant",
            TENANT_ID,
            "--authority-host",
            self.authority.host,
            "--graph-endpoint",
            self.graph.endpoint,
            "--token-cache",
            str(self.cache),
        ]
        if app_only:
            sign_in += ["--client-id", APP_ID]
        command, *rest = argv
        code = main([command, *sign_in, *rest], Output(out, err), io.StringIO(stdin))
        return Result(code, out.getvalue(), err.getvalue())

    def connect(self, tenant_url: str, token: str, *extra: str) -> Result:
        return self.run("connect", "--tenant-url", tenant_url, "--token-stdin", *extra, stdin=token + "\n")


@pytest.fixture
def entra(standin_tls: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Entra]:
    cert, key = standin_tls
    graph = Graph(secrets.token_hex(32), "", cert, key)
    graph.resource = graph.endpoint
    client_secret = secrets.token_urlsafe(24)
    authority = Authority(graph.endpoint, cert, key, token_key=graph.token_key)
    authority.confidential[APP_ID] = ConfidentialApp(roles=list(ALL_ROLES), secret=client_secret)
    monkeypatch.setenv("SCIM_ENTRA_CLIENT_SECRET", client_secret)
    for name in ("SCIM_ENTRA_CLIENT_ID", "SCIM_ENTRA_CERTIFICATE", "SCIM_ENTRA_APP_NAME", "SCIM_ENTRA_TENANT"):
        monkeypatch.delenv(name, raising=False)
    yield Entra(authority, graph, tmp_path / "cache" / "tokens.json", client_secret)
    authority.close()
    graph.close()
    assert authority.violations == []
    assert graph.violations == []


@pytest.fixture
def vault(entra: Entra, standin_tls: tuple[Path, Path]) -> Iterator[KeyVault]:
    """A Key Vault stand-in whose tokens the app-only sign-in may read and write (``--key-vault-auth signin``)."""
    cert, key = standin_tls
    key_vault = KeyVault(f"{entra.authority.host}/{TENANT_ID}", entra.graph.token_key, cert, key)
    entra.authority.other_resources.add(key_vault.resource)
    yield key_vault
    key_vault.close()
    assert key_vault.violations == []
