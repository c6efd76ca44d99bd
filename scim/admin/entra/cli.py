"""``python -m scim entra …``: argument parsing and what each command prints. The Graph requests live in
``provisioning``; sign-in in ``signin``.

Secrets (the SCIM token, a client secret) come from stdin, an environment variable or Key Vault, never from argv
(which other users can read in the process list); everything printed passes through :class:`Output`, which blanks
any secret this run has seen, whatever the source of the text."""

import argparse
import getpass
import json
import os
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from scim.admin.entra import permissions, provisioning
from scim.admin.entra.clouds import CLOUDS, resolve
from scim.admin.entra.graph import GraphClient, GraphError
from scim.admin.entra.provisioning import App, Credentials, ProvisioningError
from scim.admin.entra.signin import SignInError, SignInOptions, TokenSource, default_token_cache

if TYPE_CHECKING:
    from scim.admin.entra.key_vault import KeyVaultTokens

EXIT_REFUSED = 1  # Entra said no: a failed validation or provisioning step
EXIT_UNUSABLE = 2  # could not ask: sign-in, permissions, Graph errors
EXIT_INTERRUPTED = 130
DEFAULT_APP_NAME = "SCIM endpoint"


class Output:
    """Prints to stdout/stderr with every known secret replaced by ``***``."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.secrets: set[str] = set()

    def hide(self, secret: str | None) -> None:
        if secret:
            self.secrets.add(secret)

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def line(self, text: str = "") -> None:
        print(self.redact(text), file=self.out, flush=True)

    def note(self, text: str) -> None:
        print(self.redact(text), file=self.err, flush=True)


def main(argv: list[str], output: Output | None = None, stdin: TextIO | None = None) -> int:
    """``python -m scim entra ARGV``: the exit status."""
    return run(parser().parse_args(argv), output, stdin)


def parser() -> argparse.ArgumentParser:
    entra = argparse.ArgumentParser(prog="python -m scim entra", description=__doc__.split("\n\n")[0])
    sub = entra.add_subparsers(dest="entra_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    sign_in = common.add_argument_group("sign-in")
    sign_in.add_argument(
        "--tenant",
        default=os.environ.get("SCIM_ENTRA_TENANT", "organizations"),
        help="Entra tenant id or domain (env SCIM_ENTRA_TENANT)",
    )
    sign_in.add_argument(
        "--client-id",
        default=os.environ.get("SCIM_ENTRA_CLIENT_ID"),
        help="app registration to sign in with (env SCIM_ENTRA_CLIENT_ID)",
    )
    sign_in.add_argument(
        "--client-secret-stdin",
        action="store_true",
        help="app-only: read the client secret from stdin (or set SCIM_ENTRA_CLIENT_SECRET)",
    )
    sign_in.add_argument(
        "--certificate",
        type=Path,
        default=_env_path("SCIM_ENTRA_CERTIFICATE"),
        help="app-only: PEM file with private key and certificate (env SCIM_ENTRA_CERTIFICATE)",
    )
    sign_in.add_argument("--cloud", choices=sorted(CLOUDS), default=os.environ.get("SCIM_ENTRA_CLOUD", "global"))
    sign_in.add_argument(
        "--authority-host",
        default=os.environ.get("SCIM_ENTRA_AUTHORITY_HOST"),
        help="sign-in host, overriding --cloud's",
    )
    sign_in.add_argument(
        "--graph-endpoint", default=os.environ.get("SCIM_ENTRA_GRAPH_ENDPOINT"), help="Graph host, overriding --cloud's"
    )
    sign_in.add_argument(
        "--token-cache",
        type=Path,
        default=_env_path("SCIM_ENTRA_TOKEN_CACHE") or default_token_cache(),
        help="msal token cache for device-code sign-in",
    )
    common.add_argument(
        "--app",
        default=os.environ.get("SCIM_ENTRA_APP_NAME", DEFAULT_APP_NAME),
        help=f"the enterprise app's display name (default {DEFAULT_APP_NAME!r})",
    )

    sub.add_parser("login", parents=[common], help="sign in (device code) and keep the token cache")

    connect = sub.add_parser("connect", parents=[common], help="create/reuse the app, its SCIM job and credentials")
    _endpoint_options(connect)
    token = connect.add_mutually_exclusive_group()
    token.add_argument("--token-stdin", action="store_true", help="read the SCIM bearer token from stdin")
    token.add_argument("--key-vault", help="read the token from this Key Vault (DefaultAzureCredential)")
    _key_vault_options(connect)
    connect.add_argument(
        "--assign",
        action="append",
        default=[],
        metavar="user:UPN|user:ID|group:ID",
        help="assign a user or group to the app (repeatable)",
    )
    connect.add_argument("--no-start", action="store_true", help="configure and validate, but leave the job off")
    connect.add_argument(
        "--scope",
        choices=("assigned", "all"),
        help="provision only assigned users and groups, or all of them (default: Entra's, assigned)",
    )

    status = sub.add_parser("status", parents=[common], help="job state, last cycle, quarantine, progress")
    status.add_argument("--watch", action="store_true", help="refresh until interrupted")
    status.add_argument("--interval", type=float, default=15.0, help="seconds between refreshes with --watch")
    status.add_argument("--count", type=int, default=0, help="with --watch: stop after this many refreshes")

    logs = sub.add_parser("logs", parents=[common], help="the app's provisioning logs")
    logs.add_argument("--since", help="ISO time, or an age such as 30m, 6h, 2d (default: 24h)", default="24h")
    logs.add_argument("--failed", action="store_true", help="only failures")
    logs.add_argument("--json", action="store_true", help="one JSON array, for tooling")

    provision = sub.add_parser("provision", parents=[common], help="provision one user now and print each step")
    provision.add_argument("user", help="userPrincipalName or object id")

    restart = sub.add_parser("restart", parents=[common], help="restart the job (clears errors and quarantine)")
    restart.add_argument("--reset", action="store_true", help="also forget what was provisioned: match everyone again")
    sub.add_parser("pause", parents=[common], help="pause the job (start it again with connect or restart)")

    rotate = sub.add_parser("rotate", parents=[common], help="new token: add, validate, switch Entra, retire the old")
    _endpoint_options(rotate)
    where = rotate.add_mutually_exclusive_group()
    where.add_argument("--key-vault", help="the vault holding the endpoint's tokens (default: the deployment's)")
    where.add_argument(
        "--stored-tenant",
        metavar="NAME",
        help="rotate the bearer secret of this tenant in the endpoint's credentials table "
        "(python -m scim tenants; storage settings as for python -m scim check)",
    )
    _key_vault_options(rotate)
    rotate.add_argument(
        "--wait",
        type=float,
        default=900.0,
        help="seconds to wait for the endpoint to accept the new token (default 900)",
    )
    rotate.add_argument("--poll", type=float, default=15.0, help="seconds between Test Connections while waiting")
    return entra


def _endpoint_options(parser: argparse.ArgumentParser) -> None:
    """Where the endpoint is: typed, or read from the Bicep deployment, the same way for connect and rotate."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--tenant-url", help="the endpoint's https://<app>/scim/v2")
    source.add_argument(
        "--from-deployment",
        nargs=2,
        metavar=("RG", "DEPLOYMENT"),
        help="read tenantUrl and keyVaultName from the Bicep deployment's outputs (az CLI)",
    )


def _key_vault_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--secret-name", default="scim-bearer-tokens", help="the Key Vault secret's name")
    command.add_argument("--scim-tenant", default=None, help="the endpoint tenant whose token it is (default: none)")
    command.add_argument(
        "--key-vault-auth",
        choices=("azure", "signin"),
        default="azure",
        help="Key Vault as DefaultAzureCredential (default), or as the app-only sign-in",
    )


def run(args: argparse.Namespace, output: Output | None = None, stdin: TextIO | None = None) -> int:
    """Run one ``entra`` command; the exit status. Failures are printed as one sentence, never a traceback."""
    out = output or Output()
    stdin = stdin or sys.stdin
    try:
        return _COMMANDS[args.entra_command](args, out, stdin)
    except (GraphError, SignInError) as failure:
        out.note(f"scim entra {args.entra_command}: {failure}")
        return EXIT_UNUSABLE
    except ProvisioningError as failure:
        out.note(f"scim entra {args.entra_command}: {failure}")
        return EXIT_REFUSED
    except KeyboardInterrupt:
        out.note(f"scim entra {args.entra_command}: interrupted")
        return EXIT_INTERRUPTED


def _graph(args: argparse.Namespace, out: Output, stdin: TextIO, *commands: str) -> tuple[GraphClient, TokenSource]:
    import requests

    client_secret = os.environ.get("SCIM_ENTRA_CLIENT_SECRET") or None
    if args.client_secret_stdin:
        client_secret = _read_secret(stdin, "Client secret: ")
    out.hide(client_secret)
    cloud = resolve(args.cloud, args.authority_host, args.graph_endpoint)
    options = SignInOptions(
        cloud,
        args.tenant,
        args.client_id,
        client_secret,
        args.certificate,
        os.environ.get("SCIM_ENTRA_CERTIFICATE_PASSWORD") or None,
        args.token_cache,
    )
    session = requests.Session()
    tokens = TokenSource(options, permissions.delegated_scopes(*commands), session, prompt=out.note)
    graph = GraphClient(cloud.graph_endpoint, tokens, options.app_only, session=session, on_wait=out.note)
    return graph, tokens


def _login(args: argparse.Namespace, out: Output, stdin: TextIO) -> int:
    graph, tokens = _graph(args, out, stdin, *permissions.COMMANDS)
    tokens()
    who = tokens.account() or f"app {args.client_id} (app-only)"
    out.line(f"Signed in to {args.tenant} as {who}; Graph {graph.endpoint}")
    if not tokens.options.app_only:
        out.line(f"Token cache: {args.token_cache}")
    return 0


def _connect(args: argparse.Namespace, out: Output, stdin: TextIO) -> int:
    tenant_url, vault = args.tenant_url, args.key_vault
    if args.from_deployment:
        outputs = _deployment_outputs(*args.from_deployment)
        tenant_url = outputs["tenantUrl"]
        vault = vault or (None if args.token_stdin else outputs.get("keyVaultName"))
    if not re.fullmatch(r"https?://[^/\s]+/.*scim/v2/?", tenant_url or ""):
        raise ProvisioningError(f"--tenant-url {tenant_url!r} should be the endpoint's https://<host>/scim/v2")
    if not vault and not args.token_stdin:
        raise ProvisioningError("Give the SCIM token with --token-stdin or --key-vault (never on the command line).")
    needed = ("connect", "connect --assign") if args.assign else ("connect",)
    graph, tokens = _graph(args, out, stdin, *needed)
    if vault:
        store = _key_vault(args, vault, tokens)
        plain = store.tokens()
        if not plain:
            who = f"tenant {args.scim_tenant!r}" if args.scim_tenant else "the default tenant"
            raise ProvisioningError(f"{store.where} holds no plain (unhashed) token for {who}.")
        secret = plain[-1]
    else:
        secret = _read_secret(stdin, "SCIM bearer token: ")
    out.hide(secret)
    credentials = Credentials(tenant_url.rstrip("/"), secret)

    app = provisioning.find_app(graph, args.app)
    if app is None:
        app = provisioning.create_app(graph, args.app)
        out.line(f"Created enterprise app {app.display_name!r} (service principal {app.service_principal_id})")
    else:
        out.line(
            f"Found enterprise app {app.display_name!r} (service principal {app.service_principal_id}); reusing it"
        )
    job = provisioning.find_job(graph, app)
    if job is None:
        job = provisioning.create_job(graph, app)
        out.line(f"Created provisioning job {job['id']} from template {job.get('templateId')}")
    else:
        out.line(f"Found provisioning job {job['id']}; reusing it")
    verdict = provisioning.validate(graph, app, job, credentials)
    if verdict:
        out.line(f"Test Connection to {credentials.tenant_url}: FAILED\n  {verdict}")
        out.line("Nothing was saved: Entra keeps its previous credentials.")
        return EXIT_REFUSED
    out.line(f"Test Connection to {credentials.tenant_url}: OK")
    provisioning.save_credentials(graph, app, credentials, None if args.scope is None else args.scope == "all")
    scope = f"; scope: {args.scope} users and groups" if args.scope else ""
    out.line(f"Saved the tenant URL and secret token in Entra{scope}")
    for target in args.assign:
        _assign(graph, app, target, out)
    if args.no_start:
        out.line("Job left off (--no-start): python -m scim entra restart starts it")
        return 0
    provisioning.start(graph, app, job)
    out.line(
        "Started provisioning: the first cycle begins within minutes; watch it with python -m scim entra status --watch"
    )
    return 0


def _assign(graph: GraphClient, app: App, target: str, out: Output) -> None:
    kind, _, key = target.partition(":")
    if kind == "user" and key:
        principal = provisioning.find_user(graph, key)
        label = principal.get("userPrincipalName", key)
    elif kind == "group" and key:
        principal = provisioning.find_group(graph, key)
        label = principal.get("displayName", key)
    else:
        raise ProvisioningError(f"--assign {target!r}: write user:<upn or id> or group:<object id>")
    done = provisioning.assign(graph, app, principal["id"])
    out.line(f"{'Assigned' if done else 'Already assigned'} {kind} {label} to {app.display_name!r}")


def _status(args: argparse.Namespace, out: Output, stdin: TextIO) -> int:
    graph, _ = _graph(args, out, stdin, "status")
    app = provisioning.require_app(graph, args.app)
    job = provisioning.require_job(graph, app)
    shown = 0
    while True:
        current = provisioning.get_job(graph, app, job)
        if args.watch:
            out.line(f"--- {datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S')}Z")
        for line in describe_status(app, current):
            out.line(line)
        shown += 1
        if not args.watch or (args.count and shown >= args.count):
            return 0
        try:
            time.sleep(args.interval)
        except KeyboardInterrupt:
            return 0


# What to do about each documented quarantine reason (synchronizationQuarantine.reason).
QUARANTINE_ADVICE = {
    "EncounteredBaseEscrowThreshold": "most requests failed: read entra logs --failed, fix, then restart",
    "EncounteredTotalEscrowThreshold": "too many objects failed: read the failed logs, fix the cause, then restart",
    "EncounteredEscrowProportionThreshold": "a high share of objects failed: read the failed logs, fix, then restart",
    "EncounteredQuarantineException": "Entra could not use the endpoint (credentials or reachability): run "
    "connect again to re-test and save the credentials, then restart",
    "QuarantinedOnDemand": "quarantined by an admin or Microsoft: restart to clear it",
    "TooManyDeletes": "the accidental-deletion threshold was hit: check the deletes are intended, then restart",
    "IngestionInterrupted": "the cycle was interrupted: restart",
}


def describe_status(app: App, job: dict) -> list[str]:
    status = job.get("status") or {}
    schedule = job.get("schedule") or {}
    lines = [
        f"App:        {app.display_name} (service principal {app.service_principal_id})",
        f"Job:        {job['id']} (template {job.get('templateId')})",
        f"State:      {status.get('code', '?')}; schedule {schedule.get('state', '?')}, "
        f"interval {_interval(schedule.get('interval'))}",
    ]
    last = status.get("lastExecution")
    if last:
        lines.append(
            f"Last cycle: {last.get('state', '?')} {last.get('timeBegan', '?')} -> {last.get('timeEnded') or 'running'}"
        )
        lines.append(
            f"            imported {last.get('countImported', 0)}, exported {last.get('countExported', 0)}, "
            f"escrowed (errors) {last.get('countEscrowed', 0)}"
        )
        error = last.get("error")
        if error:
            lines.append(f"            error {error.get('code')}: {error.get('message')}")
    else:
        lines.append("Last cycle: none yet")
    if status.get("countSuccessiveCompleteFailures"):
        lines.append(f"Failures:   {status['countSuccessiveCompleteFailures']} complete failures in a row")
    quarantine = status.get("quarantine")
    if quarantine:
        reason = quarantine.get("reason", "Unknown")
        lines.append(
            f"QUARANTINE: {reason} since {quarantine.get('seriesBegan') or quarantine.get('currentBegan')}, "
            f"next attempt {quarantine.get('nextAttempt')}"
        )
        error = quarantine.get("error") or {}
        if error:
            lines.append(f"            {error.get('code')}: {error.get('message')}")
        lines.append(
            f"  What to do: {QUARANTINE_ADVICE.get(reason, 'read the failed logs, fix the cause, then restart')}"
        )
    for progress in status.get("progress") or []:
        lines.append(
            f"Progress:   {progress.get('completionPercentage', 0)}% ({progress.get('countOfCompletedSteps', 0)} "
            f"of {progress.get('countOfTotalSteps', 0)} steps) at {progress.get('progressObservationDateTime')}"
        )
    counts = ", ".join(f"{p['key']} {p['value']}" for p in status.get("synchronizedEntryCountByType") or [])
    if counts:
        lines.append(f"Synced:     {counts}")
    if status.get("troubleshootingUrl"):
        lines.append(f"Help:       {status['troubleshootingUrl']}")
    return lines


def _interval(value: str | None) -> str:
    found = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?", value or "")
    if not found:
        return value or "?"
    hours, minutes = found.groups()
    return f"{int(hours or 0) * 60 + int(minutes or 0)} min"


def _logs(args: argparse.Namespace, out: Output, stdin: TextIO) -> int:
    graph, _ = _graph(args, out, stdin, "logs")
    app = provisioning.require_app(graph, args.app)
    since = parse_since(args.since)
    entries = provisioning.provisioning_logs(graph, app, since, args.failed)
    if args.json:
        out.line(json.dumps(list(entries), indent=2))
        return 0
    out.line(f"{'time':20}  {'action':8}  {'status':8}  {'source':36}  {'target':36}  error")
    shown = 0
    for entry in entries:
        status = entry.get("provisioningStatusInfo") or {}
        error = status.get("errorInformation") or {}
        source = (entry.get("sourceIdentity") or {}).get("displayName") or (entry.get("sourceIdentity") or {}).get(
            "id", ""
        )
        target = (entry.get("targetIdentity") or {}).get("id") or ""
        failure = f"{error.get('errorCode')}: {error.get('reason')}" if error else ""
        out.line(
            f"{entry.get('activityDateTime', ''):20}  {entry.get('provisioningAction', ''):8}  "
            f"{status.get('status', ''):8}  {source:36}  {target:36}  {failure}"
        )
        shown += 1
    out.note(f"{shown} event(s) since {since}")
    return 0


def parse_since(value: str) -> str:
    """An ISO time, or an age (``30m``, ``6h``, ``2d``) before now: Graph's filter wants ``yyyy-mm-ddThh:mm:ssZ``."""
    found = re.fullmatch(r"(\d+)([mhd])", value.strip())
    if found:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[found.group(2)]
        moment = datetime.now(UTC) - timedelta(**{unit: int(found.group(1))})
    else:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ProvisioningError(f"--since {value!r}: give an ISO time or an age such as 30m, 6h, 2d") from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _provision(args: argparse.Namespace, out: Output, stdin: TextIO) -> int:
    graph, _ = _graph(args, out, stdin, "provision")
    app = provisioning.require_app(graph, args.app)
    job = provisioning.require_job(graph, app)
    user = provisioning.find_user(graph, args.user)
    rule = provisioning.user_rule_id(graph, app, job)
    answer = provisioning.provision_on_demand(graph, app, job, user["id"], rule)
    result, detail = json.loads(answer.get("key") or "{}"), json.loads(answer.get("value") or "{}")
    out.line(f"Provision on demand: {user.get('userPrincipalName')} ({user['id']}) -> {app.display_name!r}")
    for step in detail.get("provisioningSteps", []):
        out.line(f"  {step.get('type', ''):9} {step.get('status', ''):8} {step.get('description', '')}")
        pairs = "; ".join(f"{key}={value}" for key, value in (step.get("details") or {}).items())
        if pairs:
            out.line(f"                     {pairs[:200]}{'…' if len(pairs) > 200 else ''}")
    target = (detail.get("targetIdentity") or {}).get("id")
    outcome = result.get("result", "?")
    details = result.get("details") or {}
    out.line(f"Result: {outcome} (action {detail.get('action', '?')}{f', target id {target}' if target else ''})")
    if details.get("errorCode"):
        out.line(f"  {details.get('errorCode')}: {details.get('errorMessage')}")
    return 0 if outcome in ("Success", "Skipped") else EXIT_REFUSED


def _restart(args: argparse.Namespace, out: Output, stdin: TextIO) -> int:
    graph, _ = _graph(args, out, stdin, "restart")
    app = provisioning.require_app(graph, args.app)
    job = provisioning.require_job(graph, app)
    provisioning.restart(graph, app, job, args.reset)
    scope = provisioning.RESET_SCOPE if args.reset else provisioning.RESTART_SCOPE
    out.line(f"Restarted job {job['id']} (reset scope: {scope})")
    return 0


def _pause(args: argparse.Namespace, out: Output, stdin: TextIO) -> int:
    graph, _ = _graph(args, out, stdin, "pause")
    app = provisioning.require_app(graph, args.app)
    job = provisioning.require_job(graph, app)
    provisioning.pause(graph, app, job)
    out.line(f"Paused job {job['id']}; python -m scim entra restart resumes it")
    return 0


def _rotate(args: argparse.Namespace, out: Output, stdin: TextIO) -> int:
    from scim.admin.entra.rotation import TokenStore, rotate

    tenant_url, vault = args.tenant_url, args.key_vault
    if args.from_deployment:
        outputs = _deployment_outputs(*args.from_deployment)
        tenant_url = outputs["tenantUrl"]
        vault = vault or (None if args.stored_tenant else outputs.get("keyVaultName"))
    if not vault and not args.stored_tenant:
        raise ProvisioningError(
            "rotate needs to know where the endpoint reads its tokens: --key-vault (or --from-deployment) for "
            "SCIM_BEARER_TOKENS, or --stored-tenant NAME for credentials kept with python -m scim tenants"
        )
    graph, tokens = _graph(args, out, stdin, "rotate")
    app = provisioning.require_app(graph, args.app)
    job = provisioning.require_job(graph, app)
    store: TokenStore
    if vault:
        store = _key_vault(args, vault, tokens)
    else:
        from scim.admin.entra.stored_tokens import StoredTokens
        from scim.local.host import load_local_settings

        load_local_settings()  # the storage settings, as python -m scim tenants reads them
        store = StoredTokens(args.stored_tenant)
    rotate(graph, app, job, tenant_url.rstrip("/"), store, say=out.line, hide=out.hide, wait=args.wait, poll=args.poll)
    if vault:
        out.line("Rotated. Restart the function app (az functionapp restart) so it stops accepting the old token now.")
    else:
        out.line("Rotated. The endpoint stops accepting the old secret within 30 s.")
    return 0


def _read_secret(stdin: TextIO, prompt: str) -> str:
    """One line from stdin; at a terminal, asked for without echo."""
    value = getpass.getpass(prompt) if stdin.isatty() else stdin.readline()
    value = value.strip()
    if not value:
        raise ProvisioningError(f"{prompt.rstrip(': ')} is empty on stdin")
    return value


def _key_vault(args: argparse.Namespace, vault: str, tokens: TokenSource) -> "KeyVaultTokens":
    from scim.admin.entra.key_vault import KeyVaultTokens, SignInCredential

    credential = SignInCredential(tokens.app_token) if args.key_vault_auth == "signin" else None
    return KeyVaultTokens(vault, args.secret_name, args.scim_tenant, credential)


def _deployment_outputs(group: str, deployment: str) -> dict[str, Any]:
    """The Bicep deployment's outputs through the az CLI (already signed in for the deployment itself)."""
    import shutil
    import subprocess

    az = shutil.which("az")
    if az is None:
        raise ProvisioningError("--from-deployment needs the az CLI; or pass --tenant-url and --key-vault")
    command = [
        az,
        "deployment",
        "group",
        "show",
        "-g",
        group,
        "-n",
        deployment,
        "--query",
        "properties.outputs",
        "-o",
        "json",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise ProvisioningError(f"az deployment group show failed: {done.stderr.strip()[:300]}")
    return {name: value.get("value") for name, value in json.loads(done.stdout).items()}


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


_COMMANDS: dict[str, Callable[[argparse.Namespace, Output, TextIO], int]] = {
    "login": _login,
    "connect": _connect,
    "status": _status,
    "logs": _logs,
    "provision": _provision,
    "restart": _restart,
    "pause": _pause,
    "rotate": _rotate,
}
