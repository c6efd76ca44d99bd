"""Configuration, read once from the environment (Functions app settings, or local.settings.json Values locally)."""

import hashlib
import os
import re
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import urlsplit

DEFAULT_TENANT = "default"
_TENANT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TABLE_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9]{0,39}")
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")
"""RFC 6750's ``b64token``: all that an ``Authorization: Bearer`` header can carry."""
HASHED_PREFIX = "sha256:"
MIN_TOKEN_LENGTH = 16
"""For plain entries, checked at start; for presented tokens, checked on every request, so that a ``sha256:`` entry
(whose length cannot be known) made from a short token never authenticates anyone."""
_KEY_VAULT_REFERENCE = "@microsoft.keyvault("
_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")

# The application template id Entra puts in ``aud`` for custom (non-gallery) apps, and the legacy Azure AD Graph id
# that older provisioning jobs still send (research/entra-client.md, section c2).
DEFAULT_ENTRA_AUDIENCES = ("8adf8e6e-67b2-4cf2-a259-e3dc5476c621", "00000002-0000-0000-c000-000000000000")
# Entra's v1 (sts.windows.net) OpenID metadata; its ``jwks_uri`` names the tenant's signing keys.
DEFAULT_ENTRA_METADATA_URL = "https://login.microsoftonline.com/{tenant}/.well-known/openid-configuration"
# Microsoft.Azure.SyncFabric, the first-party app the provisioning service requests its tokens as. Pinning ``appid``
# matters because the legacy audience above is Azure AD Graph: any user or app in a configured tenant could get a
# token for it, and without this pin that token would be a SCIM credential for the whole tenant.
DEFAULT_ENTRA_APP_IDS = ("00000014-0000-0000-c000-000000000000",)
# Entra's v2 OpenID metadata: the keys that sign Workload Identity Federation client assertions (issuer .../v2.0).
DEFAULT_WIF_METADATA_URL = "https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration"
MIN_SIGNING_KEY_LENGTH = 32
DEFAULT_CHANGE_FEED_QUEUE = "scim-changes"
_QUEUE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
"""Azure's queue names: 3 to 63 lower-case letters, digits and single hyphens, starting and ending alphanumeric."""
DEFAULT_RETENTION_DAYS = 7.0
DEFAULT_PUBLISH_DELAY_SECONDS = 0.1
ACCESS_TOKEN_MINUTES = (60, 360)


class ConfigurationError(RuntimeError):
    """The app settings cannot describe a safe endpoint; the endpoint refuses to serve rather than run open."""


@dataclass(frozen=True)
class StorageSettings:
    """Where the data lives: all that a tool reading the table needs (``python -m scim check`` needs no token)."""

    connection_string: str | None
    table_uri: str | None
    table_prefix: str = "scim"

    @classmethod
    def read_environment(cls) -> "StorageSettings":
        env = os.environ
        return cls(
            connection_string=env.get("SCIM_STORAGE_CONNECTION_STRING") or None,
            table_uri=(env.get("SCIM_STORAGE_TABLE_URI") or "").rstrip("/") or None,
            table_prefix=env.get("SCIM_TABLE_PREFIX") or "scim",
        )

    def check(self) -> None:
        if not (self.connection_string or self.table_uri):
            raise ConfigurationError("set SCIM_STORAGE_CONNECTION_STRING or SCIM_STORAGE_TABLE_URI")
        if not _TABLE_PREFIX.fullmatch(self.table_prefix):
            raise ConfigurationError("SCIM_TABLE_PREFIX must be a letter then up to 39 letters or digits")


@dataclass(frozen=True)
class Settings:
    """Every setting the endpoint reads; ``local.settings.sample.json`` and the README document each one.

    ``bearer_tokens`` holds ``(tenant, token)`` pairs where the token is either the secret itself or
    ``sha256:<hex digest>``; ``secret_digests`` is derived from it on construction so that authentication only ever
    compares SHA-256 digests, whichever form the admin configured.
    """

    storage_connection_string: str | None
    storage_table_uri: str | None
    bearer_tokens: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    table_prefix: str = "scim"
    entra_tenant_ids: tuple[str, ...] = ()
    entra_audiences: tuple[str, ...] = DEFAULT_ENTRA_AUDIENCES
    entra_metadata_url: str = DEFAULT_ENTRA_METADATA_URL
    entra_app_ids: tuple[str, ...] = DEFAULT_ENTRA_APP_IDS
    undeclared_extensions: str = "keep"
    """``keep`` stores attributes of extension schemas nothing declares (Entra's custom attributes); ``reject``
    answers 400 naming them. Never a silent drop."""
    indexed_attributes: str = ""
    """``SCIM_INDEXED_ATTRIBUTES`` as written; :func:`scim.indexes.parse` reads it (checked in :meth:`check`)."""
    schema_extensions: str = ""
    """``SCIM_SCHEMA_EXTENSIONS``: the declarations file; :func:`scim.declarations.load` reads it."""
    token_signing_keys: tuple[str, ...] = field(default=(), repr=False)
    access_token_minutes: int = 60
    wif_metadata_url: str = DEFAULT_WIF_METADATA_URL
    share_entra_tenant_data: bool = False
    """A shared-secret tenant may be named by an Entra tenant id, and then holds the data that Entra-issued tokens
    of that tenant reach (``SCIM_SHARE_ENTRA_TENANT_DATA``); off, such a name is refused at start."""
    change_feed: bool = False
    """Record an event for every committed change, in the change's own transaction (README, "Change feed")."""
    change_feed_snapshots: bool = False
    change_feed_settle_seconds: float = 60.0
    """How far behind the writes the pull feed reads; at least :data:`scim.store.outbox.MIN_SETTLE_SECONDS`."""
    change_feed_queue: str = DEFAULT_CHANGE_FEED_QUEUE
    """The Azure Storage Queue the publisher sends events to (``SCIM_CHANGE_FEED_QUEUE``); empty: no publisher."""
    storage_queue_uri: str | None = None
    """``SCIM_STORAGE_QUEUE_URI``, else derived from the table URI: the same account, reached the same way."""
    change_feed_retention_days: float = DEFAULT_RETENTION_DAYS
    change_feed_publish_delay_seconds: float = DEFAULT_PUBLISH_DELAY_SECONDS
    """How long after a write the in-process publisher waits, so that a burst of writes shares queue messages."""
    secret_digests: tuple[tuple[str, bytes], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "secret_digests", tuple(secret_digest(entry) for entry in self.bearer_tokens))

    @classmethod
    def from_environment(cls) -> "Settings":
        """Read and validate the settings, so that a misconfiguration is reported once, clearly."""
        env = os.environ
        storage = StorageSettings.read_environment()
        settings = cls(
            storage_connection_string=storage.connection_string,
            storage_table_uri=storage.table_uri,
            bearer_tokens=parse_bearer_tokens(env.get("SCIM_BEARER_TOKENS", "")),
            table_prefix=storage.table_prefix,
            entra_tenant_ids=parse_tenant_ids(env.get("SCIM_ENTRA_TENANT_IDS", "")),
            entra_audiences=_split(env.get("SCIM_ENTRA_AUDIENCES", "")) or DEFAULT_ENTRA_AUDIENCES,
            entra_metadata_url=(env.get("SCIM_ENTRA_METADATA_URL") or "").strip() or DEFAULT_ENTRA_METADATA_URL,
            entra_app_ids=_split(env.get("SCIM_ENTRA_APP_IDS", "")) or DEFAULT_ENTRA_APP_IDS,
            undeclared_extensions=(env.get("SCIM_UNDECLARED_EXTENSIONS") or "keep").strip().lower(),
            token_signing_keys=parse_signing_keys(env.get("SCIM_TOKEN_SIGNING_KEYS", "")),
            access_token_minutes=parse_minutes(env.get("SCIM_ACCESS_TOKEN_MINUTES", "")),
            wif_metadata_url=(env.get("SCIM_WIF_METADATA_URL") or "").strip() or DEFAULT_WIF_METADATA_URL,
            share_entra_tenant_data=_flag("SCIM_SHARE_ENTRA_TENANT_DATA", env.get("SCIM_SHARE_ENTRA_TENANT_DATA", "")),
            indexed_attributes=env.get("SCIM_INDEXED_ATTRIBUTES") or "",
            schema_extensions=env.get("SCIM_SCHEMA_EXTENSIONS") or "",
            change_feed=parse_switch(env.get("SCIM_CHANGE_FEED", ""), "SCIM_CHANGE_FEED"),
            change_feed_snapshots=parse_switch(env.get("SCIM_CHANGE_FEED_SNAPSHOTS", ""), "SCIM_CHANGE_FEED_SNAPSHOTS"),
            change_feed_settle_seconds=parse_settle(env.get("SCIM_CHANGE_FEED_SETTLE_SECONDS", "")),
            change_feed_queue=parse_queue_name(env.get("SCIM_CHANGE_FEED_QUEUE", "")),
            storage_queue_uri=(env.get("SCIM_STORAGE_QUEUE_URI") or "").rstrip("/") or None,
            change_feed_retention_days=parse_number(
                env.get("SCIM_CHANGE_FEED_RETENTION_DAYS", ""),
                "SCIM_CHANGE_FEED_RETENTION_DAYS",
                DEFAULT_RETENTION_DAYS,
            ),
            change_feed_publish_delay_seconds=parse_number(
                env.get("SCIM_CHANGE_FEED_PUBLISH_DELAY_SECONDS", ""),
                "SCIM_CHANGE_FEED_PUBLISH_DELAY_SECONDS",
                DEFAULT_PUBLISH_DELAY_SECONDS,
            ),
        )
        settings.check()
        return settings

    @property
    def publishes_changes(self) -> bool:
        """The queue publisher runs when the feed is on and a queue is named."""
        return self.change_feed and bool(self.change_feed_queue)

    @property
    def queue_uri(self) -> str | None:
        """Where the queue service is when there is no connection string: the table's account, by its URI."""
        if self.storage_queue_uri or not self.storage_table_uri:
            return self.storage_queue_uri
        return self.storage_table_uri.replace(".table.", ".queue.", 1)

    @property
    def entra_enabled(self) -> bool:
        """Entra-issued JWTs are accepted only for tenants the admin listed; none listed means the mode is off."""
        return bool(self.entra_tenant_ids)

    def check(self) -> None:
        """Refuse settings that would leave the endpoint open or pointing nowhere."""
        if not self.bearer_tokens and not self.entra_tenant_ids and not self.token_signing_keys:
            raise ConfigurationError(
                "SCIM_BEARER_TOKENS, SCIM_ENTRA_TENANT_IDS and SCIM_TOKEN_SIGNING_KEYS are all empty: the endpoint "
                "refuses every request until one of them is set"
            )
        low, high = ACCESS_TOKEN_MINUTES
        if not low <= self.access_token_minutes <= high:
            raise ConfigurationError(f"SCIM_ACCESS_TOKEN_MINUTES must be between {low} and {high}")
        if self.token_signing_keys:
            check_metadata_url(self.wif_metadata_url, "SCIM_WIF_METADATA_URL")
        StorageSettings(self.storage_connection_string, self.storage_table_uri, self.table_prefix).check()
        if self.undeclared_extensions not in ("keep", "reject"):
            raise ConfigurationError("SCIM_UNDECLARED_EXTENSIONS must be keep or reject")
        guid_named = [tenant for tenant, _ in self.bearer_tokens if _GUID.fullmatch(tenant.lower())]
        if guid_named and not self.share_entra_tenant_data:
            raise ConfigurationError(
                f"SCIM_BEARER_TOKENS tenant {guid_named[0]} is named like an Entra tenant id, so Entra-issued tokens "
                "of that tenant would reach its data; rename it, or set SCIM_SHARE_ENTRA_TENANT_DATA=true if sharing "
                "is wanted"
            )
        from scim import declarations, indexes  # the models they use are loaded by the endpoint anyway

        indexes.parse(self.indexed_attributes, declarations.load(self.schema_extensions))
        if self.entra_enabled:
            for tenant_id in self.entra_tenant_ids:
                if not _GUID.fullmatch(tenant_id):
                    raise ConfigurationError("SCIM_ENTRA_TENANT_IDS must hold lower-case tenant GUIDs")
            if not self.entra_audiences:
                raise ConfigurationError("SCIM_ENTRA_AUDIENCES must name at least one audience")
            if not self.entra_app_ids:
                raise ConfigurationError("SCIM_ENTRA_APP_IDS must name at least one client application id")
            check_metadata_url(self.entra_metadata_url)


def parse_bearer_tokens(raw: str) -> tuple[tuple[str, str], ...]:
    """Parse ``[tenant=]token`` entries, comma-separated; a bare token belongs to the default tenant.

    Several tokens at once let an admin rotate one without downtime. A token written ``sha256:<64 hex>`` is the
    digest of the real token, so the secret itself need not sit in the app settings; it is normalised to lower case.
    An ``=`` followed by anything but more ``=`` separates a tenant from its token; trailing ``=`` are base64
    padding, part of a bare token (``openssl rand -base64`` makes them). Every entry that cannot be read exactly so
    stops the endpoint at start, with a message naming the entry by position (never quoting the secret): a
    misread entry would otherwise become a working token of the wrong tenant, or silently no token at all.
    """
    if _KEY_VAULT_REFERENCE in raw.lower():
        raise ConfigurationError("SCIM_BEARER_TOKENS holds an unresolved Key Vault reference")
    entries: list[tuple[str, str]] = []
    for position, part in enumerate(raw.split(","), start=1):
        item = part.strip()
        if not item:
            continue
        where = f"SCIM_BEARER_TOKENS entry {position}"
        tenant, sep, token = item.partition("=")
        if not (sep and token.strip("=")):
            tenant, token = DEFAULT_TENANT, item
        elif not _TENANT_NAME.fullmatch(tenant):
            raise ConfigurationError(
                f"{where}: the text before '=' is not a tenant name (1 to 64 letters, digits, '_' or '-'); "
                "a token may hold '=' only as trailing base64 padding"
            )
        if token[: len(HASHED_PREFIX)].lower() == HASHED_PREFIX:
            token = HASHED_PREFIX + token[len(HASHED_PREFIX) :].lower()
        _digest(tenant, token, where)  # named by position only: a misread tenant may be part of a secret
        entries.append((tenant, token))
    return tuple(entries)


def secret_digest(entry: tuple[str, str]) -> tuple[str, bytes]:
    """The ``(tenant, SHA-256 digest)`` an entry stands for: hashed entries are decoded, plain ones hashed.

    Done once per process, so that each request hashes only the presented token and compares digests of equal
    length, which keeps the comparison constant-time whatever form each entry has.
    """
    tenant, token = entry
    return tenant, _digest(tenant, token, "a SCIM_BEARER_TOKENS entry")


def _digest(tenant: str, token: str, where: str) -> bytes:
    if not _TENANT_NAME.fullmatch(tenant):
        raise ConfigurationError("a SCIM_BEARER_TOKENS tenant must be 1 to 64 letters, digits, '_' or '-'")
    if token[: len(HASHED_PREFIX)].lower() == HASHED_PREFIX:
        hex_digest = token[len(HASHED_PREFIX) :].lower()
        if not _SHA256_HEX.fullmatch(hex_digest):
            raise ConfigurationError(f"{where}: sha256: must be followed by exactly 64 hex digits")
        return bytes.fromhex(hex_digest)
    if _KEY_VAULT_REFERENCE in token.lower():
        raise ConfigurationError("SCIM_BEARER_TOKENS holds an unresolved Key Vault reference")
    if not _BEARER_TOKEN.fullmatch(token):
        raise ConfigurationError(
            f"{where}: a bearer token may hold only letters, digits, '-', '.', '_', '~', '+' and '/', then '=' "
            "padding (RFC 6750); no spaces, commas or other characters"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigurationError(f"{where}: the token has {len(token)} characters; at least {MIN_TOKEN_LENGTH}")
    return hashlib.sha256(token.encode("utf-8")).digest()


def parse_tenant_ids(raw: str) -> tuple[str, ...]:
    """Parse comma-separated Entra tenant GUIDs, lower-cased as Entra writes them in ``iss`` and ``tid``."""
    tenant_ids: list[str] = []
    for item in _split(raw):
        tenant_id = item.lower()
        if not _GUID.fullmatch(tenant_id):
            raise ConfigurationError("SCIM_ENTRA_TENANT_IDS must hold tenant GUIDs (directory ids), comma-separated")
        if tenant_id not in tenant_ids:
            tenant_ids.append(tenant_id)
    return tuple(tenant_ids)


def check_metadata_url(template: str, setting: str = "SCIM_ENTRA_METADATA_URL") -> None:
    """The metadata URL decides whose keys sign valid tokens, so it must be HTTPS (plain HTTP only on loopback,
    for tests) and name the tenant."""
    if "{tenant}" not in template:
        raise ConfigurationError(f"{setting} must contain {{tenant}}")
    parts = urlsplit(template.replace("{tenant}", "tenant"))
    loopback_http = parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS
    if not parts.hostname or not (parts.scheme == "https" or loopback_http):
        raise ConfigurationError(f"{setting} must be an https:// URL")


def parse_signing_keys(raw: str) -> tuple[str, ...]:
    """Comma-separated keys for the access tokens of ``/oauth2/token``; the first signs, all verify (rotation)."""
    if _KEY_VAULT_REFERENCE in raw.lower():
        raise ConfigurationError("SCIM_TOKEN_SIGNING_KEYS holds an unresolved Key Vault reference")
    keys = _split(raw)
    if any(len(key) < MIN_SIGNING_KEY_LENGTH for key in keys):
        raise ConfigurationError(f"each SCIM_TOKEN_SIGNING_KEYS key must be {MIN_SIGNING_KEY_LENGTH}+ characters long")
    return keys


def parse_minutes(raw: str) -> int:
    if not raw.strip():
        return ACCESS_TOKEN_MINUTES[0]
    if not re.fullmatch(r"[0-9]{1,4}", raw.strip()):
        raise ConfigurationError("SCIM_ACCESS_TOKEN_MINUTES must be a whole number of minutes")
    return int(raw.strip())


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("", "true", "false"):
        raise ConfigurationError(f"{name} must be true or false")
    return value == "true"


def parse_switch(raw: str, setting: str) -> bool:
    """``on``/``off`` (also true/false, 1/0); empty is off."""
    value = raw.strip().lower()
    if value in ("", "off", "false", "0"):
        return False
    if value in ("on", "true", "1"):
        return True
    raise ConfigurationError(f"{setting} must be on or off")


def parse_settle(raw: str) -> float:
    """The pull feed's lag behind the writes: shorter than the writers' worst-case commit delay, a follower could
    pass an event that commits late (scim/store/outbox.py)."""
    from scim.store.outbox import DEFAULT_SETTLE_SECONDS, MIN_SETTLE_SECONDS

    if not raw.strip():
        return DEFAULT_SETTLE_SECONDS
    if not re.fullmatch(r"[0-9]{1,5}", raw.strip()) or int(raw.strip()) < MIN_SETTLE_SECONDS:
        raise ConfigurationError(
            f"SCIM_CHANGE_FEED_SETTLE_SECONDS must be whole seconds, at least {MIN_SETTLE_SECONDS:g}"
        )
    return float(raw.strip())


def parse_queue_name(raw: str) -> str:
    """``SCIM_CHANGE_FEED_QUEUE``: empty is the default queue, ``off`` turns the publisher off (pull feed only)."""
    value = raw.strip()
    if not value:
        return DEFAULT_CHANGE_FEED_QUEUE
    if value.lower() == "off":
        return ""
    if not _QUEUE_NAME.fullmatch(value):
        raise ConfigurationError(
            "SCIM_CHANGE_FEED_QUEUE must be a queue name (3 to 63 lower-case letters, digits and single hyphens) or off"
        )
    return value


def parse_number(raw: str, setting: str, default: float) -> float:
    """A non-negative number (of seconds or days, as the setting says); empty is the default."""
    if not raw.strip():
        return default
    if not re.fullmatch(r"[0-9]{1,6}(?:\.[0-9]{1,6})?", raw.strip()):
        raise ConfigurationError(f"{setting} must be a non-negative number")
    return float(raw.strip())


def _split(raw: str) -> tuple[str, ...]:
    return tuple(item for item in (part.strip() for part in raw.split(",")) if item)


@cache
def current_settings() -> Settings:
    """The process's settings, read on first use rather than at import (import time is cold-start time)."""
    return Settings.from_environment()
