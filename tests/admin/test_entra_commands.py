"""Every ``entra`` command against the Graph stand-in (which checks each request's documented shape) and a real
SCIM endpoint on Azurite behind it: connect fresh and re-run, a refused token, assignment, status of a quarantined
job, logs paging, restart/pause, throttling, a missing permission, and that no secret is ever printed."""

import json
import os
import secrets

import pytest

from tests.admin.conftest import ALL_ROLES, APP_ID, Entra
from tests.local_server import LocalServer
from tests.standins.authority import ConfidentialApp


def connected(entra: Entra, server: LocalServer, name: str = "SCIM endpoint"):
    result = entra.connect(server.base_url, server.token, "--app", name)
    assert result.code == 0, result.text
    return entra.graph.app(name)


def test_connect_creates_the_app_job_and_credentials_then_starts(entra: Entra, scim_server: LocalServer):
    result = entra.connect(scim_server.base_url, scim_server.token)
    assert result.code == 0, result.text
    app = entra.graph.app("SCIM endpoint")
    (job,) = app.jobs.values()
    assert app.secrets == {"BaseAddress": scim_server.base_url, "SecretToken": scim_server.token}
    assert job.template_id == "scim" and job.state == "Active"
    assert "Created enterprise app 'SCIM endpoint'" in result.out
    assert f"Test Connection to {scim_server.base_url}: OK" in result.out
    assert "Started provisioning" in result.out
    assert scim_server.token not in result.text and entra.client_secret not in result.text
    # Entra's Test Connection really reached the endpoint with the token.
    assert entra.graph.scim_requests == ["GET /Users"]
    # The new service principal 404s at first (replication) and connect waited for it.
    assert entra.graph.requests.count(f"GET /v1.0/servicePrincipals/{app.sp_id}") == 2


def test_connect_scope_sets_sync_all(entra: Entra, scim_server: LocalServer):
    result = entra.connect(scim_server.base_url, scim_server.token, "--scope", "all")
    assert result.code == 0, result.text
    assert "scope: all users and groups" in result.out
    assert entra.graph.app("SCIM endpoint").secrets["SyncAll"] == "true"


def test_connect_no_start_leaves_the_job_off(entra: Entra, scim_server: LocalServer):
    result = entra.connect(scim_server.base_url, scim_server.token, "--no-start")
    assert result.code == 0, result.text
    (job,) = entra.graph.app("SCIM endpoint").jobs.values()
    assert job.state == "Disabled" and "Job left off (--no-start)" in result.out
    assert not any(r.endswith("/start") for r in entra.graph.requests)


def test_connect_again_reuses_the_app_and_job(entra: Entra, scim_server: LocalServer):
    connected(entra, scim_server)
    again = entra.connect(scim_server.base_url, scim_server.token)
    assert again.code == 0, again.text
    assert "Found enterprise app 'SCIM endpoint'" in again.out and "reusing it" in again.out
    assert len(entra.graph.apps) == 1
    assert len(entra.graph.app("SCIM endpoint").jobs) == 1
    assert sum("/instantiate" in r for r in entra.graph.requests) == 1


def test_a_token_the_endpoint_refuses_is_reported_and_nothing_is_saved(entra: Entra, scim_server: LocalServer):
    app = connected(entra, scim_server)
    wrong = secrets.token_urlsafe(32)
    result = entra.connect(scim_server.base_url, wrong)
    assert result.code == 1
    assert "Test Connection" in result.out and "FAILED" in result.out
    assert "You appear to have entered invalid credentials" in result.out
    assert "SCIM_BEARER_TOKENS" in result.out
    assert wrong not in result.text
    assert app.secrets["SecretToken"] == scim_server.token  # the working token stays


def test_an_unreachable_tenant_url_gets_the_allow_list_hint(entra: Entra):
    result = entra.connect("http://127.0.0.1:9/scim/v2", secrets.token_urlsafe(32))
    assert result.code == 1
    assert "could not be reached" in result.out
    assert "AzureActiveDirectory service tag" in result.out


def test_the_token_is_never_taken_from_the_command_line(entra: Entra, scim_server: LocalServer):
    result = entra.run("connect", "--tenant-url", scim_server.base_url)
    assert result.code == 1
    assert "--token-stdin or --key-vault" in result.err
    assert entra.graph.requests == []


def test_connect_assigns_users_and_groups_once(entra: Entra, scim_server: LocalServer):
    user = entra.graph.add_user("ada@contoso.example", "Ada", "Lovelace")
    group_id = "5c6b4d1e-0000-4000-8000-000000000001"
    entra.graph.groups[group_id] = {"id": group_id, "displayName": "Engineers"}
    args = ("--assign", "user:ada@contoso.example", "--assign", f"group:{group_id}")
    first = entra.connect(scim_server.base_url, scim_server.token, *args)
    assert first.code == 0, first.text
    assert "Assigned user ada@contoso.example" in first.out and "Assigned group Engineers" in first.out
    again = entra.connect(scim_server.base_url, scim_server.token, *args)
    assert "Already assigned user ada@contoso.example" in again.out
    assignments = entra.graph.app("SCIM endpoint").assignments
    assert sorted(a["principalId"] for a in assignments) == sorted([user["id"], group_id])


def test_status_of_a_quarantined_job_says_why_and_what_to_do(entra: Entra, scim_server: LocalServer):
    app = connected(entra, scim_server)
    (job,) = app.jobs.values()
    job.code = "Quarantine"
    job.quarantine = {
        "reason": "EncounteredQuarantineException",
        "currentBegan": "2026-11-29T06:00:00Z",
        "seriesBegan": "2026-11-29T05:00:00Z",
        "nextAttempt": "2026-11-29T12:00:00Z",
        "seriesCount": 3,
        "error": {
            "code": "SystemForCrossDomainIdentityManagementCredentialValidationUnavailable",
            "message": "You appear to have entered invalid credentials.",
            "tenantActionable": True,
        },
    }
    job.last_execution = {
        "state": "Failed",
        "timeBegan": "2026-11-29T05:00:00Z",
        "timeEnded": "2026-11-29T05:01:00Z",
        "countImported": 12,
        "countExported": 0,
        "countEscrowed": 12,
        "error": {"code": "HttpError401", "message": "Unauthorized"},
    }
    job.progress = [
        {
            "completionPercentage": 40,
            "countOfCompletedSteps": 2,
            "countOfTotalSteps": 5,
            "progressObservationDateTime": "2026-11-29T05:00:30Z",
        }
    ]
    result = entra.run("status")
    assert result.code == 0, result.text
    assert "State:      Quarantine; schedule Active, interval 40 min" in result.out
    assert "Last cycle: Failed 2026-11-29T05:00:00Z -> 2026-11-29T05:01:00Z" in result.out
    assert "imported 12, exported 0, escrowed (errors) 12" in result.out
    assert "QUARANTINE: EncounteredQuarantineException since 2026-11-29T05:00:00Z" in result.out
    assert "You appear to have entered invalid credentials." in result.out
    assert "What to do: Entra could not use the endpoint" in result.out
    assert "Progress:   40% (2 of 5 steps)" in result.out


def test_status_watch_refreshes(entra: Entra, scim_server: LocalServer):
    connected(entra, scim_server)
    result = entra.run("status", "--watch", "--interval", "0", "--count", "3")
    assert result.code == 0, result.text
    assert result.out.count("State:") == 3


def test_logs_follow_every_page_and_filter_failures(entra: Entra, scim_server: LocalServer):
    app = connected(entra, scim_server)
    entra.graph.add_logs(app.sp_id, 250, failed_every=10)
    entra.graph.add_logs("99999999-9999-4999-8999-999999999999", 5)  # another app's events
    listed = entra.run("logs", "--json")
    assert listed.code == 0, listed.text
    assert len(json.loads(listed.out)) == 250
    assert sum(r == "GET /v1.0/auditLogs/provisioning" for r in entra.graph.requests) == 3  # 100 + 100 + 50
    failed = entra.run("logs", "--failed", "--since", "2h")
    assert failed.code == 0, failed.text
    rows = failed.out.splitlines()[1:]
    assert len(rows) == 25
    assert all(
        "failure" in row and "SystemForCrossDomainIdentityManagementBadResponse: HTTP 409" in row for row in rows
    )


def test_logs_since_refuses_a_time_it_cannot_read(entra: Entra, scim_server: LocalServer):
    connected(entra, scim_server)
    result = entra.run("logs", "--since", "yesterday")
    assert result.code == 1
    assert "--since 'yesterday'" in result.err


def test_restart_reset_and_pause(entra: Entra, scim_server: LocalServer):
    app = connected(entra, scim_server)
    (job,) = app.jobs.values()
    job.code, job.quarantine = "Quarantine", {"reason": "TooManyDeletes"}
    restarted = entra.run("restart")
    assert restarted.code == 0, restarted.text
    assert "reset scope: Watermark, Escrows, QuarantineState" in restarted.out
    assert job.quarantine is None and job.code == "NotRun"
    assert entra.run("restart", "--reset").out.endswith("(reset scope: Full)\n")
    paused = entra.run("pause")
    assert paused.code == 0 and job.state == "Paused"


def test_throttling_and_transient_errors_are_retried_honouring_retry_after(entra: Entra, scim_server: LocalServer):
    connected(entra, scim_server)
    entra.graph.faults = [(429, "1"), (503, None), (504, "0")]
    result = entra.run("status")
    assert result.code == 0, result.text
    assert "Graph answered 429 (TooManyRequests); retrying in 1 s" in result.err
    assert "Graph answered 503 (ServiceUnavailable); retrying in 2 s" in result.err
    assert "State:" in result.out


def test_a_missing_permission_is_named(entra: Entra, scim_server: LocalServer):
    connected(entra, scim_server)
    entra.authority.confidential[APP_ID] = ConfidentialApp(
        roles=["Application.Read.All", "Synchronization.Read.All"], secret=entra.client_secret
    )
    result = entra.run("logs")
    assert result.code == 2
    assert (
        "Cannot read the provisioning logs: the app needs the Microsoft Graph application permission "
        "AuditLog.Read.All with admin consent" in result.err
    )
    assert "(its token carries: Application.Read.All, Synchronization.Read.All)" in result.err
    assert "403 Authorization_RequestDenied" in result.err


@pytest.mark.parametrize("missing", ["Synchronization.ReadWrite.All", "Application.ReadWrite.All"])
def test_connect_without_write_permission_stops_with_its_name(entra: Entra, scim_server: LocalServer, missing):
    roles = [role for role in ALL_ROLES if role != missing] + ["Application.Read.All", "Synchronization.Read.All"]
    entra.authority.confidential[APP_ID] = ConfidentialApp(roles=roles, secret=entra.client_secret)
    if missing == "Synchronization.ReadWrite.All":
        entra.graph.apps.clear()
    result = entra.connect(scim_server.base_url, scim_server.token)
    assert result.code == 2
    assert f"application permission {missing}" in result.err


def test_connect_reads_the_tenant_url_from_the_deployment_outputs(
    entra: Entra, scim_server: LocalServer, tmp_path, monkeypatch
):
    """``az deployment group show … --query properties.outputs -o json`` answered by a stand-in ``az`` on PATH that
    prints what the Bicep template's outputs look like (and records its arguments)."""
    outputs = {
        "tenantUrl": {"type": "String", "value": scim_server.base_url},
        "keyVaultName": {"type": "String", "value": "kv-unused"},
    }
    az = tmp_path / "az"
    az.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/az-args\ncat <<'JSON'\n{json.dumps(outputs)}\nJSON\n")
    az.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    result = entra.run("connect", "--from-deployment", "rg-scim", "scim", "--token-stdin", stdin=scim_server.token)
    assert result.code == 0, result.text
    assert (tmp_path / "az-args").read_text().split() == [
        "deployment",
        "group",
        "show",
        "-g",
        "rg-scim",
        "-n",
        "scim",
        "--query",
        "properties.outputs",
        "-o",
        "json",
    ]
    assert entra.graph.app("SCIM endpoint").secrets["BaseAddress"] == scim_server.base_url
