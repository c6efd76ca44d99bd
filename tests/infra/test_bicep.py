"""Offline checks of the Bicep templates in ``infra/`` (issue 5).

The Bicep CLI is not available here, so these tests are the local gate; ``az bicep build`` and
``az deployment group what-if`` stay the authoritative checks before a real deployment.

1. Syntax: every ``infra/**/*.bicep`` (and ``main.bicepparam``) is parsed with tree-sitter-bicep; any ERROR or MISSING
   node fails with ``file:line:col``.
2. Security properties: the same syntax trees are turned into plain Python values (objects -> dict, arrays -> list,
   literals -> str/int/bool/None, everything else -> ``Expr`` holding the source text) and asserted on. Module
   parameters are traced back to ``main.bicep`` parameters and their effective defaults (``main.bicepparam`` first).
   pycep-parser is not used: it drops nested child resources and does not follow modules.
3. Every security check is also run against deliberately broken copies of ``infra/`` (``test_check_catches_mutation``)
   so a check that can no longer fail is itself a failure.
4. checkov (optional lint gate, see ``infra/.checkov.yaml``) runs only when a ``checkov`` executable is available.

Set ``SCIM_INFRA_DIR`` to check another copy of the templates.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import tree_sitter_bicep
from tree_sitter import Language, Node, Parser

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = Path(os.environ.get("SCIM_INFRA_DIR", REPO_ROOT / "infra")).resolve()

_PARSER = Parser(Language(tree_sitter_bicep.language()))

# Entra's TLS 1.2 cipher suites (entra-client.md d1), in Entra's order of preference.
ENTRA_TLS12_SUITES = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
)

API_VERSIONS = {
    "Microsoft.Web/serverfarms": "2024-04-01",
    "Microsoft.Web/sites": "2024-04-01",
    "Microsoft.Web/sites/config": "2024-04-01",
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies": "2024-04-01",
    "Microsoft.Storage/storageAccounts": "2023-05-01",
    "Microsoft.Storage/storageAccounts/blobServices": "2023-05-01",
    "Microsoft.Storage/storageAccounts/blobServices/containers": "2023-05-01",
    "Microsoft.Storage/storageAccounts/queueServices": "2023-05-01",
    "Microsoft.Storage/storageAccounts/queueServices/queues": "2023-05-01",
    "Microsoft.KeyVault/vaults": "2023-07-01",
    "Microsoft.KeyVault/vaults/secrets": "2023-07-01",
    "Microsoft.Insights/components": "2020-02-02",
    "Microsoft.Insights/diagnosticSettings": "2021-05-01-preview",
    "Microsoft.OperationalInsights/workspaces": "2023-09-01",
    "Microsoft.Authorization/roleAssignments": "2022-04-01",
}

# role definition id -> (role name, resource type the assignment must be scoped to)
EXPECTED_ROLES = {
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": ("Storage Table Data Contributor", "Microsoft.Storage/storageAccounts"),
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": ("Storage Blob Data Owner", "Microsoft.Storage/storageAccounts"),
    "4633458b-17de-408a-b874-0445c86b69e6": ("Key Vault Secrets User", "Microsoft.KeyVault/vaults"),
    "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a": (
        "Storage Queue Data Message Sender",
        "Microsoft.Storage/storageAccounts/queueServices/queues",
    ),
    "3913510d-42f4-4e42-8a64-420c390055eb": ("Monitoring Metrics Publisher", "Microsoft.Insights/components"),
}

REQUIRED_APP_SETTINGS = {
    "AzureWebJobsStorage__accountName",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "SCIM_STORAGE_TABLE_URI",
    "SCIM_BEARER_TOKENS",
    "SCIM_TOKEN_SIGNING_KEYS",
    "SCIM_ACCESS_TOKEN_MINUTES",
    "SCIM_TABLE_PREFIX",
    "SCIM_ENTRA_TENANT_IDS",
    "SCIM_CHANGE_FEED",
    "SCIM_CHANGE_FEED_QUEUE",
    "SCIM_STORAGE_QUEUE_URI",
}

# Deprecated on Flex Consumption, key-based, or must never be set in Azure.
FORBIDDEN_APP_SETTINGS = {
    "AzureWebJobsStorage",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_NODE_DEFAULT_VERSION",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
    "SCIM_STORAGE_CONNECTION_STRING",
    "APPINSIGHTS_INSTRUMENTATIONKEY",
}

EXPECTED_OUTPUTS = {
    "tenantUrl",
    "tokenEndpoint",
    "functionAppName",
    "storageAccountName",
    "keyVaultName",
    "appInsightsName",
    "logAnalyticsWorkspaceName",
}


# ---------------------------------------------------------------------------------------------------------------------
# Syntax tree -> Python values
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    """Any Bicep expression that is not a plain literal, kept as source text."""

    text: str
    node: Node = field(compare=False, repr=False)

    @property
    def kind(self) -> str:
        return self.node.type


@dataclass(frozen=True)
class Loop:
    """A ``[for x in iterable: body]`` expression: ``body`` is what every element looks like."""

    iterable: Any
    body: Any


@dataclass
class Decl:
    kind: str  # param | var | resource | module | output
    name: str
    line: int
    decorators: list[str]
    type: str = ""  # param/output type; resource "type@version"; module path
    value: Any = None  # default value / value / body (converted)
    has_value: bool = False
    condition: str | None = None  # `= if (...)` resources and modules
    existing: bool = False
    nested_resources: list[str] = field(default_factory=list)
    value_node: Node | None = field(default=None, repr=False)

    @property
    def resource_type(self) -> str:
        return self.type.split("@", 1)[0]

    @property
    def api_version(self) -> str:
        return self.type.split("@", 1)[1] if "@" in self.type else ""


@dataclass
class BicepFile:
    path: Path
    rel: str
    source: bytes
    root: Node
    decls: dict[str, dict[str, Decl]] = field(default_factory=dict)

    def of(self, kind: str) -> dict[str, Decl]:
        return self.decls.setdefault(kind, {})

    @property
    def params(self) -> dict[str, Decl]:
        return self.of("param")

    @property
    def variables(self) -> dict[str, Decl]:
        return self.of("var")

    @property
    def resources(self) -> dict[str, Decl]:
        return self.of("resource")

    @property
    def modules(self) -> dict[str, Decl]:
        return self.of("module")

    @property
    def outputs(self) -> dict[str, Decl]:
        return self.of("output")

    def secure_params(self) -> set[str]:
        return {n for n, d in self.params.items() if any(x.startswith("@secure(") for x in d.decorators)}


def _text(node: Node) -> str:
    return node.text.decode("utf-8")


def _named(node: Node) -> list[Node]:
    return [c for c in node.children if c.is_named and c.type != "comment"]


_ESCAPES = {"\\'": "'", "\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\$": "$"}


def convert(node: Node, nested: list[str] | None = None) -> Any:
    """Turn an expression node into Python values; see the module docstring."""
    kind = node.type
    if kind == "object":
        out: dict[str, Any] = {}
        for prop in _named(node):
            if prop.type != "object_property":
                continue
            parts = _named(prop)
            if parts and parts[0].type == "resource_declaration":
                if nested is not None:
                    nested.append(_text(_named(parts[0])[0]))
                continue
            key_node, value_node = parts[0], parts[-1]
            key = convert(key_node) if key_node.type == "string" else _text(key_node)
            out[key.text if isinstance(key, Expr) else key] = convert(value_node, nested)
        return out
    if kind == "array":
        return [convert(c, nested) for c in _named(node)]
    if kind == "string":
        if any(c.type == "interpolation" for c in node.children):
            return Expr(_text(node), node)
        raw = "".join(_text(c) for c in node.children if c.type in ("string_content", "escape_sequence"))
        if _text(node).startswith("'''"):
            return raw
        return re.sub(r"\\.", lambda m: _ESCAPES.get(m.group(0), m.group(0)), raw)
    if kind == "boolean":
        return _text(node) == "true"
    if kind == "number":
        return int(_text(node))
    if kind == "null":
        return None
    if kind == "parenthesized_expression" and len(_named(node)) == 1:
        return convert(_named(node)[0], nested)
    return Expr(_text(node), node)


def _declaration(node: Node, decorators: list[str]) -> Decl | None:
    kinds = {
        "parameter_declaration": "param",
        "variable_declaration": "var",
        "resource_declaration": "resource",
        "module_declaration": "module",
        "output_declaration": "output",
    }
    if node.type not in kinds:
        return None
    parts = _named(node)
    decl = Decl(kinds[node.type], _text(parts[0]), node.start_point.row + 1, decorators)
    rest = parts[1:]
    if decl.kind in ("param", "output") and rest and rest[0].type == "type":
        decl.type = _text(rest[0])
        rest = rest[1:]
    elif decl.kind in ("resource", "module") and rest and rest[0].type == "string":
        decl.type = str(convert(rest[0]))
        rest = rest[1:]
    decl.existing = any(c.type == "existing" for c in node.children)
    if rest:
        value = rest[-1]
        if value.type == "if_statement":
            cond, body = _named(value)[0], _named(value)[-1]
            decl.condition = _text(cond)
            value = body
        decl.value_node = value
        decl.value = convert(value, decl.nested_resources)
        decl.has_value = True
    return decl


@cache
def parse_file(path: Path, root_dir: Path) -> BicepFile:
    source = path.read_bytes()
    if path.suffix == ".bicepparam":
        # tree-sitter-bicep 1.1.0 has no `param name = value` (untyped) rule: parse each assignment as a `var` with
        # the same expression; line numbers stay the same.
        source = re.sub(rb"(?m)^param(\s+\w+\s*=)", rb"var\1", source)
    tree = _PARSER.parse(source)
    bf = BicepFile(path, path.relative_to(root_dir).as_posix(), source, tree.root_node)
    pending: list[str] = []
    for child in tree.root_node.children:
        if child.type == "decorators":
            pending += [_text(d).strip() for d in _named(child) if d.type == "decorator"]
            continue
        decl = _declaration(child, pending)
        if decl is not None:
            bf.of(decl.kind)[decl.name] = decl
            pending = []
    return bf


def syntax_errors(bf: BicepFile) -> list[str]:
    errors: list[str] = []

    def walk(node: Node) -> None:
        if node.is_error or node.is_missing:
            row, col = node.start_point
            what = f"missing {node.type}" if node.is_missing else "syntax error"
            snippet = _text(node).splitlines()[0][:60] if node.text else ""
            errors.append(f"{bf.rel}:{row + 1}:{col + 1}: {what} near {snippet!r}")
            if node.is_error:
                return
        for c in node.children:
            walk(c)

    walk(bf.root)
    return errors


# ---------------------------------------------------------------------------------------------------------------------
# The whole template set
# ---------------------------------------------------------------------------------------------------------------------


UNKNOWN = object()  # resolve(): value not known before deployment (resource properties, functions, ...)
GUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Infra:
    root: Path
    files: dict[str, BicepFile]

    @property
    def main(self) -> BicepFile:
        return self.files["main.bicep"]

    @property
    def params_file(self) -> BicepFile:
        return self.files["main.bicepparam"]

    def resources(self, rtype: str) -> list[tuple[BicepFile, Decl]]:
        """Resources of a type declared (not `existing`) anywhere in infra/."""
        return [
            (bf, d)
            for bf in self.files.values()
            for d in bf.resources.values()
            if d.resource_type == rtype and not d.existing
        ]

    def one(self, rtype: str) -> tuple[BicepFile, Decl]:
        found = self.resources(rtype)
        assert len(found) == 1, f"expected exactly one {rtype} resource, found {[d.name for _, d in found]}"
        return found[0]

    def module_file(self, call: Decl) -> BicepFile:
        return self.files[(self.root / call.type).resolve().relative_to(self.root).as_posix()]

    def module_call(self, bf: BicepFile) -> Decl | None:
        """The `module` declaration in main.bicep that deploys `bf`."""
        return next((d for d in self.main.modules.values() if self.module_file(d) is bf), None)

    def passed(self, bf: BicepFile, name: str) -> Any:
        """What main.bicep passes to module parameter `name` of `bf` (None when not passed)."""
        call = self.module_call(bf)
        return call.value.get("params", {}).get(name) if call is not None else None

    def trace(self, bf: BicepFile, value: Any) -> Decl | None:
        """The main.bicep parameter an identifier stands for (directly, or through a module parameter)."""
        if not (isinstance(value, Expr) and value.kind == "identifier"):
            return None
        if bf is self.main:
            return self.main.params.get(value.text)
        if value.text not in bf.params:
            return None
        return self.trace(self.main, self.passed(bf, value.text))

    def params_used(self, bf: BicepFile, node: Node, seen: set[str] | None = None) -> set[str]:
        """Names of the main.bicep parameters an expression depends on (through vars and module params)."""
        seen = set() if seen is None else seen
        used: set[str] = set()
        for ident in identifiers(node):
            if ident in bf.variables and ident not in seen:
                seen.add(ident)
                used |= self.params_used(bf, bf.variables[ident].value_node, seen)
            elif bf is not self.main and ident in bf.params:
                passed = self.passed(bf, ident)
                if isinstance(passed, Expr):
                    used |= self.params_used(self.main, passed.node)
            elif bf is self.main and ident in bf.params:
                used.add(ident)
        return used

    def effective_default(self, param: Decl) -> Any:
        """Value a plain `az deployment group create ... -p infra/main.bicepparam` uses."""
        assigned = self.params_file.variables.get(param.name)
        if assigned is not None:
            return assigned.value
        return param.value if param.has_value else UNKNOWN

    def follow(self, bf: BicepFile, value: Any, depth: int = 0) -> tuple[BicepFile, Any]:
        """Follow vars, module params and `m.outputs.o` to the expression that finally produces a value."""
        if depth > 30 or not isinstance(value, Expr):
            return bf, value
        if value.kind == "identifier":
            if value.text in bf.variables:
                return self.follow(bf, bf.variables[value.text].value, depth + 1)
            if bf is not self.main and value.text in bf.params:
                passed = self.passed(bf, value.text)
                if passed is not None:
                    return self.follow(self.main, passed, depth + 1)
        m = re.fullmatch(r"(\w+)\.outputs\.(\w+)", value.text)
        if m and bf is self.main and m.group(1) in bf.modules:
            target = self.module_file(bf.modules[m.group(1)])
            if m.group(2) in target.outputs:
                return self.follow(target, target.outputs[m.group(2)].value, depth + 1)
        return bf, value

    def resolve(self, bf: BicepFile, value: Any, depth: int = 0) -> Any:
        """Concrete value of an expression under the default parameters, or UNKNOWN.

        Handles literals, vars, parameters (through modules to main.bicep and main.bicepparam), `!x`, `empty(x)`,
        `cond ? a : b`, `x.y` on object vars and `m.outputs.o` module outputs.
        """
        if depth > 30:
            return UNKNOWN
        if not isinstance(value, Expr):
            return value
        node, named = value.node, _named(value.node)

        def sub(n: Node) -> Any:
            return self.resolve(bf, convert(n), depth + 1)

        if node.type == "identifier":
            if value.text in bf.variables:
                return self.resolve(bf, bf.variables[value.text].value, depth + 1)
            if bf is self.main and value.text in bf.params:
                return self.resolve(bf, self.effective_default(bf.params[value.text]), depth + 1)
            if value.text in bf.params:
                passed = self.passed(bf, value.text)
                if passed is None:
                    param = bf.params[value.text]
                    return self.resolve(bf, param.value, depth + 1) if param.has_value else UNKNOWN
                return self.resolve(self.main, passed, depth + 1)
            return UNKNOWN
        if node.type == "ternary_expression":
            cond = sub(node.child_by_field_name("condition"))
            if isinstance(cond, bool):
                return sub(node.child_by_field_name("consequence" if cond else "alternative"))
            return UNKNOWN
        if node.type == "unary_expression" and _text(node).startswith("!"):
            arg = sub(named[0])
            return (not arg) if isinstance(arg, bool) else UNKNOWN
        if node.type == "call_expression" and _text(named[0]) == "empty":
            arg = sub(_named(named[-1])[0])
            return UNKNOWN if arg is UNKNOWN else arg in ("", [], {}, None)
        if node.type == "member_expression":
            obj, prop = named[0], _text(named[-1])
            if obj.type == "member_expression" and _text(_named(obj)[-1]) == "outputs" and bf is self.main:
                call = self.main.modules.get(_text(_named(obj)[0]))
                if call is not None:
                    target = self.module_file(call)
                    if prop in target.outputs:
                        return self.resolve(target, target.outputs[prop].value, depth + 1)
                return UNKNOWN
            base = sub(obj)
            return self.resolve(bf, base[prop], depth + 1) if isinstance(base, dict) and prop in base else UNKNOWN
        return UNKNOWN

    def strings_in(self, bf: BicepFile, value: Any) -> list[str]:
        """Every string an expression contains or references (used to find role definition GUIDs)."""
        if isinstance(value, str):
            return [value]
        if not isinstance(value, Expr):
            return []
        out = []
        stack = [value.node]
        while stack:
            n = stack.pop()
            if n.type in ("string", "identifier", "member_expression"):
                v = self.resolve(bf, convert(n))
                if isinstance(v, str):
                    out.append(v)
                    continue
            stack.extend(n.children)
        return out


def load_infra(root: Path = INFRA_DIR) -> Infra:
    paths = sorted(root.rglob("*.bicep")) + sorted(root.rglob("*.bicepparam"))
    return Infra(root, {p.relative_to(root).as_posix(): parse_file(p, root) for p in paths})


def expand(value: Any, bf: BicepFile, depth: int = 0) -> Any:
    """Inline `var` references, `concat(...)` of arrays and `[for ...]` loops so rule lists can be inspected."""
    if depth > 20:
        return value
    if isinstance(value, dict):
        return {k: expand(v, bf, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, bf, depth + 1) for v in value]
    if isinstance(value, Expr):
        node = value.node
        if node.type == "identifier" and value.text in bf.variables:
            return expand(bf.variables[value.text].value, bf, depth + 1)
        if node.type == "call_expression" and _text(_named(node)[0]) == "concat":
            items: list[Any] = []
            for arg in _named(_named(node)[-1]):
                part = expand(convert(arg), bf, depth + 1)
                items += part if isinstance(part, list) else [part]
            return items
        if node.type == "for_statement":
            after_in = node.children[[c.type for c in node.children].index("in") + 1 :]
            iterable = next(c for c in after_in if c.is_named)
            return [Loop(convert(iterable), expand(convert(_named(node)[-1]), bf, depth + 1))]
    return value


def identifiers(node: Node | None) -> Iterator[str]:
    if node is None:
        return
    if node.type == "identifier":
        yield _text(node)
    for c in node.children:
        yield from identifiers(c)


def has_literal_text(node: Node) -> bool:
    return node.type in ("string_content", "number", "boolean") or any(has_literal_text(c) for c in node.children)


def get(obj: Any, path: str) -> Any:
    for key in path.split("."):
        assert isinstance(obj, dict), f"expected an object before {key!r} in {path!r}, got {obj!r}"
        assert key in obj, f"missing {key!r} (path {path!r})"
        obj = obj[key]
    return obj


def text_of(value: Any) -> str:
    return value.text if isinstance(value, Expr) else repr(value)


# ---------------------------------------------------------------------------------------------------------------------
# Checks (each raises AssertionError; run against the real templates and against broken copies)
# ---------------------------------------------------------------------------------------------------------------------


def check_layout(infra: Infra) -> None:
    assert "main.bicep" in infra.files, "infra/main.bicep is missing"
    assert "main.bicepparam" in infra.files, "infra/main.bicepparam is missing"
    using = [c for c in infra.params_file.root.children if c.type == "using_statement"]
    assert using and "'./main.bicep'" in _text(using[0]), "main.bicepparam must start with using './main.bicep'"
    for decl in infra.main.modules.values():
        target = (infra.root / decl.type).resolve()
        assert target.is_file(), f"main.bicep:{decl.line}: module path {decl.type!r} does not exist"
        assert target.is_relative_to(infra.root / "modules"), f"module {decl.type} must live in infra/modules/"


def check_syntax(infra: Infra) -> None:
    errors = [e for bf in infra.files.values() for e in syntax_errors(bf)]
    assert not errors, "Bicep syntax errors:\n" + "\n".join(errors)


def check_module_wiring(infra: Infra) -> None:
    """Module params passed exist and required ones are passed; main.bicepparam matches main.bicep."""
    problems = []
    for decl in infra.main.modules.values():
        target = infra.module_file(decl)
        passed = get(decl.value, "params")
        problems += [
            f"main.bicep:{decl.line}: module {decl.name} passes unknown param {n!r}"
            for n in passed
            if n not in target.params
        ]
        problems += [
            f"main.bicep:{decl.line}: module {decl.name} misses required param {n!r}"
            for n, p in target.params.items()
            if not p.has_value and n not in passed
        ]
    problems += [
        f"main.bicepparam:{a.line}: {n!r} is not a parameter of main.bicep"
        for n, a in infra.params_file.variables.items()
        if n not in infra.main.params
    ]
    problems += [
        f"main.bicep:{p.line}: required param {n!r} is not assigned in main.bicepparam"
        for n, p in infra.main.params.items()
        if not p.has_value and n not in infra.params_file.variables
    ]
    assert not problems, "\n".join(problems)


def check_api_versions(infra: Infra) -> None:
    problems = []
    for bf in infra.files.values():
        for d in bf.resources.values():
            want = API_VERSIONS.get(d.resource_type)
            if want is None:
                problems.append(f"{bf.rel}:{d.line}: unexpected resource type {d.resource_type}")
            elif d.api_version != want:
                problems.append(f"{bf.rel}:{d.line}: {d.resource_type}@{d.api_version}, expected @{want}")
    assert not problems, "\n".join(problems)


def check_no_nested_children(infra: Infra) -> None:
    nested = [
        f"{bf.rel}:{d.line}: {d.name} nests {n} (declare child resources at top level with parent:)"
        for bf in infra.files.values()
        for d in bf.resources.values()
        for n in d.nested_resources
    ]
    assert not nested, "\n".join(nested)


def check_flex_function_app(infra: Infra) -> None:
    _, plan = infra.one("Microsoft.Web/serverfarms")
    assert get(plan.value, "sku.tier") == "FlexConsumption"
    assert get(plan.value, "sku.name") == "FC1"
    bf, site = infra.one("Microsoft.Web/sites")
    kind = get(site.value, "kind")
    assert isinstance(kind, str) and "functionapp" in kind and "linux" in kind, f"site kind {kind!r}"
    assert get(site.value, "identity.type") == "SystemAssigned", "the app needs a system-assigned identity"
    cfg = get(site.value, "properties.functionAppConfig")
    assert get(cfg, "runtime.name") == "python"
    assert get(cfg, "runtime.version") == "3.11"
    assert get(cfg, "deployment.storage.type") == "blobContainer"
    assert get(cfg, "deployment.storage.authentication.type") == "SystemAssignedIdentity"
    scale = get(cfg, "scaleAndConcurrency")
    for path, param in (
        ("triggers.http.perInstanceConcurrency", "perInstanceConcurrency"),
        ("instanceMemoryMB", "instanceMemoryMB"),
        ("maximumInstanceCount", "maximumInstanceCount"),
        ("alwaysReady", "alwaysReadyInstanceCount"),
    ):
        value = get(scale, path)
        used = infra.params_used(bf, value.node) if isinstance(value, Expr) else set()
        assert param in used, f"scaleAndConcurrency.{path} must come from the {param} parameter, got {value!r}"
    limit = infra.main.params["maximumInstanceCount"].decorators
    assert "@minValue(40)" in limit and "@maxValue(1000)" in limit, f"Flex accepts 40-1000 instances: {limit}"
    concurrency = infra.resolve(bf, get(scale, "triggers.http.perInstanceConcurrency"))
    assert isinstance(concurrency, int) and concurrency >= 8, f"default perInstanceConcurrency {concurrency} (< 8)"
    assert "linuxFxVersion" not in get(site.value, "properties.siteConfig"), "linuxFxVersion is not for Flex"


def check_site_hardening(infra: Infra) -> None:
    bf, site = infra.one("Microsoft.Web/sites")
    props = get(site.value, "properties")
    assert get(props, "httpsOnly") is True
    sc = get(props, "siteConfig")
    assert get(sc, "minTlsVersion") == "1.2"
    assert get(sc, "scmMinTlsVersion") == "1.2"
    assert get(sc, "ftpsState") == "Disabled"
    assert get(sc, "remoteDebuggingEnabled") is False
    # Off by default: App Service documents a minimum cipher suite for dedicated plans, and FC1 is not one.
    suite = infra.resolve(bf, get(sc, "minTlsCipherSuite"))
    if suite:
        assert suite in ENTRA_TLS12_SUITES, f"default minTlsCipherSuite {suite!r} is not one of Entra's TLS 1.2 suites"
        assert "_GCM_" in suite and "ECDHE_RSA" in suite, "use an ECDHE-RSA GCM suite (the default certificate is RSA)"
    policies = {
        get(d.value, "name"): get(d.value, "properties.allow")
        for _, d in infra.resources("Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    }
    assert policies == {"ftp": False, "scm": False}, f"basic publishing credentials must be off: {policies}"


def _rules(infra: Infra, key: str) -> tuple[BicepFile, dict[str, Any], list[Any]]:
    bf, site = infra.one("Microsoft.Web/sites")
    sc = get(site.value, "properties.siteConfig")
    rules = expand(get(sc, key), bf)
    assert isinstance(rules, list), f"{key} must be an array, got {rules!r}"
    return bf, sc, rules


def _is_open(rule: Any) -> bool:
    body = rule.body if isinstance(rule, Loop) else rule
    address = str(body.get("ipAddress", "")) if isinstance(body, dict) else ""
    parts = {a.strip().lower() for a in address.split(",")}
    return bool(parts & {"any", "0.0.0.0/0", "::/0", "*", "internet"})


def check_access_restrictions(infra: Infra) -> None:
    bf, sc, rules = _rules(infra, "ipSecurityRestrictions")
    tag_rules = [r for r in rules if isinstance(r, dict) and r.get("tag") == "ServiceTag"]
    assert len(tag_rules) == 1, f"expected one multi-source ServiceTag rule, got {tag_rules}"
    tags = {t.strip() for t in str(tag_rules[0].get("ipAddress", "")).split(",")}
    assert tags == {"AzureActiveDirectory", "AzureActiveDirectoryDomainServices"}, f"service tags: {tags}"
    assert tag_rules[0].get("action") == "Allow"
    assert not any(_is_open(r) for r in rules), "a rule allows the whole internet"
    loops = [r for r in rules if isinstance(r, Loop)]
    assert len(loops) == 1, "admin CIDRs must be one rule per entry of a parameter"
    assert infra.trace(bf, loops[0].iterable) is infra.main.params.get("allowedCidrs"), "loop over allowedCidrs"
    assert loops[0].body.get("action") == "Allow" and loops[0].body.get("tag", "Default") == "Default"
    cidrs = infra.resolve(bf, loops[0].iterable)
    assert cidrs == [], f"allowedCidrs must default to [], got {cidrs!r}"
    action = get(sc, "ipSecurityRestrictionsDefaultAction")
    assert infra.resolve(bf, action) == "Deny", "the main site must deny by default (test switch off by default)"
    if isinstance(action, Expr):  # the test switch must be a bool parameter, and 'Allow' only when it is on
        used = infra.params_used(bf, action.node)
        assert len(used) == 1 and infra.main.params[next(iter(used))].type == "bool", f"default action: {used}"


def check_scm_restrictions(infra: Infra) -> None:
    bf, sc, rules = _rules(infra, "scmIpSecurityRestrictions")
    assert get(sc, "scmIpSecurityRestrictionsDefaultAction") == "Deny", "SCM must deny by default, unconditionally"
    assert get(sc, "scmIpSecurityRestrictionsUseMain") is False, "SCM keeps its own (stricter) list"
    assert not any(_is_open(r) for r in rules), "an SCM rule allows the whole internet"
    assert not any(isinstance(r, dict) and r.get("tag") == "ServiceTag" for r in rules), "no service tags on SCM"
    loops = [r for r in rules if isinstance(r, Loop)]
    assert len(loops) == 1 and infra.trace(bf, loops[0].iterable) is infra.main.params.get("scmAllowedCidrs")
    assert infra.resolve(bf, loops[0].iterable) == [], "scmAllowedCidrs must default to []"


def check_storage(infra: Infra) -> None:
    bf, st = infra.one("Microsoft.Storage/storageAccounts")
    assert get(st.value, "kind") == "StorageV2"
    props = get(st.value, "properties")
    assert get(props, "minimumTlsVersion") == "TLS1_2"
    assert get(props, "allowSharedKeyAccess") is False
    assert get(props, "allowBlobPublicAccess") is False
    assert get(props, "supportsHttpsTrafficOnly") is True
    assert get(props, "defaultToOAuthAuthentication") is True
    assert infra.resolve(bf, get(st.value, "sku.name")) == "Standard_LRS"
    containers = infra.resources("Microsoft.Storage/storageAccounts/blobServices/containers")
    assert containers, "the Flex deployment package needs a blob container"
    for _, c in containers:
        assert get(c.value, "properties.publicAccess") == "None", f"container {c.name} must be private"
    declared = {d.resource_type for bf in infra.files.values() for d in bf.resources.values()}
    assert not [t for t in declared if "tableServices" in t], "the app creates its tables; do not declare them"


def check_role_assignments(infra: Infra) -> None:
    found: dict[str, str] = {}
    for bf, ra in infra.resources("Microsoft.Authorization/roleAssignments"):
        where = f"{bf.rel}:{ra.line} ({ra.name})"
        props = get(ra.value, "properties")
        role_ids = {g for s in infra.strings_in(bf, get(props, "roleDefinitionId")) for g in GUID_RE.findall(s)}
        assert len(role_ids) == 1, f"{where}: cannot tell the role definition id: {role_ids}"
        role_id = role_ids.pop()
        assert role_id in EXPECTED_ROLES, f"{where}: unexpected role {role_id} (least privilege)"
        role_name, scope_type = EXPECTED_ROLES[role_id]
        assert role_id not in found, f"{where}: {role_name} assigned twice"
        assert get(props, "principalType") == "ServicePrincipal", f"{where}: principalType must be ServicePrincipal"
        principal = get(props, "principalId")
        passed = infra.passed(bf, principal.text) if isinstance(principal, Expr) else None
        assert isinstance(passed, Expr) and re.fullmatch(r"\w+\.outputs\.principalId", passed.text), (
            f"{where}: principalId must be the function app's system identity (module output principalId)"
        )
        app_module = infra.main.modules[passed.text.split(".")[0]]
        out = infra.module_file(app_module).outputs["principalId"]
        assert re.fullmatch(r"\w+\.identity\.principalId", text_of(out.value)), f"{where}: identity principalId"
        scope = get(ra.value, "scope")
        assert isinstance(scope, Expr) and scope.text in bf.resources, f"{where}: scope must be a resource symbol"
        actual = bf.resources[scope.text].resource_type
        assert actual == scope_type, f"{where}: {role_name} must be scoped to {scope_type}, not {actual}"
        found[role_id] = role_name
    missing = sorted(EXPECTED_ROLES[r][0] for r in EXPECTED_ROLES if r not in found)
    assert not missing, f"missing role assignments: {missing}"


def check_app_settings(infra: Infra) -> None:
    configs = infra.resources("Microsoft.Web/sites/config")
    matches = [(bf, d) for bf, d in configs if get(d.value, "name") == "appsettings"]
    assert len(matches) == 1, "expected one Microsoft.Web/sites/config 'appsettings' resource"
    bf, res = matches[0]
    settings = get(res.value, "properties")
    assert isinstance(settings, dict), "app settings must be a literal object"
    missing = REQUIRED_APP_SETTINGS - settings.keys()
    assert not missing, f"missing app settings: {sorted(missing)}"
    forbidden = sorted(FORBIDDEN_APP_SETTINGS & settings.keys())
    assert not forbidden, f"app settings that must not be set (Flex-deprecated or key-based): {forbidden}"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD"

    for setting in ("SCIM_BEARER_TOKENS", "SCIM_TOKEN_SIGNING_KEYS"):
        check_key_vault_reference(infra, bf, setting, settings[setting])

    uri_text = text_of(infra.follow(bf, settings["SCIM_STORAGE_TABLE_URI"])[1])
    assert ".table." in uri_text and not uri_text.rstrip("'").endswith("/"), (
        f"SCIM_STORAGE_TABLE_URI must be the table endpoint without a trailing slash: {uri_text}"
    )
    queue_uri = text_of(infra.follow(bf, settings["SCIM_STORAGE_QUEUE_URI"])[1])
    assert ".queue." in queue_uri and not queue_uri.rstrip("'").endswith("/"), (
        f"SCIM_STORAGE_QUEUE_URI must be the queue endpoint without a trailing slash: {queue_uri}"
    )
    call = infra.module_call(bf)
    if call is not None:  # applied after the role assignments, so the KV reference and host storage resolve
        roles_modules = {
            n for n, d in infra.main.modules.items() if "Microsoft.Authorization/roleAssignments" in _types(infra, d)
        }
        depends = set(identifiers(call.value_node)) if "dependsOn" in call.value else set()
        assert roles_modules and roles_modules <= depends, "the app settings module must dependOn the role assignments"


def check_key_vault_reference(infra: Infra, bf: BicepFile, setting: str, kv_ref: Any) -> None:
    """The setting is a Key Vault reference to this deployment's vault and to a secret the deployment writes."""
    m = re.fullmatch(r"'@Microsoft\.KeyVault\(VaultName=\$\{(\w+)\};SecretName=\$\{(\w+)\}\)'", text_of(kv_ref))
    assert m, f"{setting} must be a Key Vault reference, got {text_of(kv_ref)}"
    vault_passed = infra.passed(bf, m.group(1))
    assert isinstance(vault_passed, Expr) and re.fullmatch(r"\w+\.outputs\.name", vault_passed.text), "VaultName"
    vault_file = infra.module_file(infra.main.modules[vault_passed.text.split(".")[0]])
    assert any(d.resource_type == "Microsoft.KeyVault/vaults" for d in vault_file.resources.values()), "VaultName"
    ref_secret = infra.resolve(bf, ident(m.group(2)))
    written = {infra.resolve(kv_bf, get(secret.value, "name")) for kv_bf, secret in key_vault_secrets(infra)}
    assert isinstance(ref_secret, str) and ref_secret in written, f"{setting}: no secret {ref_secret!r} in {written}"


def key_vault_secrets(infra: Infra) -> list[tuple[BicepFile, Decl]]:
    return infra.resources("Microsoft.KeyVault/vaults/secrets")


def _types(infra: Infra, call: Decl) -> set[str]:
    return {d.resource_type for d in infra.module_file(call).resources.values()}


def ident(name: str) -> Expr:
    """An identifier expression, as if `name` had been written in a template."""
    tree = _PARSER.parse(f"var x = {name}\n".encode())
    return Expr(name, _named(_named(tree.root_node)[0])[-1])


def check_monitoring(infra: Infra) -> None:
    _, appi = infra.one("Microsoft.Insights/components")
    assert get(appi.value, "properties.DisableLocalAuth") is True
    assert isinstance(get(appi.value, "properties.WorkspaceResourceId"), Expr), "App Insights must be workspace-based"
    infra.one("Microsoft.OperationalInsights/workspaces")


def check_key_vault(infra: Infra) -> None:
    _, kv = infra.one("Microsoft.KeyVault/vaults")
    props = get(kv.value, "properties")
    assert get(props, "enableRbacAuthorization") is True
    assert get(props, "enableSoftDelete") is True
    assert get(props, "enablePurgeProtection") is True
    secrets = key_vault_secrets(infra)
    assert len(secrets) == 2, "two Key Vault secrets: the bearer token(s) and the token signing key(s)"
    sources = set()
    for sbf, secret in secrets:
        value = get(secret.value, "properties.value")
        assert isinstance(value, Expr) and value.text in sbf.secure_params(), "a secret value must be a @secure() param"
        passed = infra.passed(sbf, value.text)
        assert isinstance(passed, Expr)
        sources |= set(identifiers(passed.node))
    assert {"scimBearerToken", "generatedTokenSigningKey"} <= sources, "secrets <- scimBearerToken, generated key"


def check_secure_params(infra: Infra) -> None:
    problems = []
    for bf in infra.files.values():
        secure = bf.secure_params()
        for name, p in bf.params.items():
            sensitive = re.search(r"token|secret|password", name, re.I) and not name.endswith("Name")
            if sensitive and p.type == "string" and name not in secure:
                problems.append(f"{bf.rel}:{p.line}: {name} looks sensitive but is not @secure()")
            # A secure default may only be generated (newGuid()), never a fixed value.
            if (
                name in secure
                and p.has_value
                and (has_literal_text(p.value_node) or set(identifiers(p.value_node)) != {"newGuid"})
            ):
                problems.append(f"{bf.rel}:{p.line}: @secure() param {name} has a fixed default {_text(p.value_node)}")
    token = infra.main.params.get("scimBearerToken")
    assert token is not None and "scimBearerToken" in infra.main.secure_params(), "scimBearerToken must be @secure()"
    if token.has_value:
        problems.append(f"main.bicep:{token.line}: scimBearerToken must have no default")
    assigned = infra.params_file.variables.get("scimBearerToken")
    from_env = r"readEnvironmentVariable\('\w+'(, '')?\)"
    if assigned is not None and not re.fullmatch(from_env, _text(assigned.value_node)):
        problems.append(f"main.bicepparam:{assigned.line}: scimBearerToken may only come from the environment")
    assert not problems, "\n".join(problems)


def check_outputs(infra: Infra) -> None:
    missing = EXPECTED_OUTPUTS - infra.main.outputs.keys()
    assert not missing, f"missing outputs: {sorted(missing)}"
    tenant = text_of(infra.main.outputs["tenantUrl"].value)
    m = re.fullmatch(r"'https://\$\{(\w+)\.outputs\.(\w+)\}/scim/v2'", tenant)
    assert m, f"tenantUrl must be https://<defaultHostName>/scim/v2, got {tenant}"
    host = infra.module_file(infra.main.modules[m.group(1)]).outputs[m.group(2)]
    assert re.fullmatch(r"\w+\.properties\.defaultHostName", text_of(host.value)), "tenantUrl host: defaultHostName"
    token = text_of(infra.main.outputs["tokenEndpoint"].value)
    expected = tenant.replace("/scim/v2", "/oauth2/token")
    assert token == expected, f"tokenEndpoint must be https://<defaultHostName>/oauth2/token, got {token}"


def check_no_secret_outputs(infra: Infra) -> None:
    problems = []
    leak = re.compile(r"\blist\w*\(|getSecret\(|connectionstring|instrumentationkey|\.secrets?\b", re.I)
    for bf in infra.files.values():
        secure = bf.secure_params()
        for name, out in bf.outputs.items():
            used = set(identifiers(out.value_node)) & secure
            if used:
                problems.append(f"{bf.rel}:{out.line}: output {name} exposes secure param(s) {sorted(used)}")
            if out.value_node is not None and leak.search(_text(out.value_node)):
                problems.append(f"{bf.rel}:{out.line}: output {name} exposes a key, secret or connection string")
            if any(x.startswith("@secure(") for x in out.decorators):
                problems.append(f"{bf.rel}:{out.line}: output {name} is @secure(); outputs must not carry secrets")
        if re.search(rb"\blist(Keys|AccountSas|ServiceSas)\(", bf.source):
            problems.append(f"{bf.rel}: uses listKeys/list*Sas (shared keys are disabled; use identities)")
    assert not problems, "\n".join(problems)


CHECKS: dict[str, Callable[[Infra], None]] = {
    "layout": check_layout,
    "syntax": check_syntax,
    "module_wiring": check_module_wiring,
    "api_versions": check_api_versions,
    "no_nested_children": check_no_nested_children,
    "flex_function_app": check_flex_function_app,
    "site_hardening": check_site_hardening,
    "access_restrictions": check_access_restrictions,
    "scm_restrictions": check_scm_restrictions,
    "storage": check_storage,
    "role_assignments": check_role_assignments,
    "app_settings": check_app_settings,
    "monitoring": check_monitoring,
    "key_vault": check_key_vault,
    "secure_params": check_secure_params,
    "outputs": check_outputs,
    "no_secret_outputs": check_no_secret_outputs,
}


# ---------------------------------------------------------------------------------------------------------------------
# Tests on the real templates
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def infra() -> Infra:
    return load_infra()


def _bicep_files() -> list[str]:
    return sorted(p.relative_to(INFRA_DIR).as_posix() for p in INFRA_DIR.rglob("*.bicep*") if p.is_file())


@pytest.mark.parametrize("rel", _bicep_files())
def test_syntax(rel: str) -> None:
    bf = parse_file(INFRA_DIR / rel, INFRA_DIR)
    errors = syntax_errors(bf)
    assert not errors, "\n".join(errors)
    assert bf.decls, f"{rel}: no declarations found"


@pytest.mark.parametrize("name", [n for n in CHECKS if n != "syntax"])
def test_check(infra: Infra, name: str) -> None:
    CHECKS[name](infra)


def test_syntax_checker_reports_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.bicep"
    broken.write_text("param ok string\nresource r 'Microsoft.Web/sites@2024-04-01' = {\n  name 'x'\n}\n")
    errors = syntax_errors(parse_file(broken, tmp_path))
    assert errors and errors[0].startswith("broken.bicep:3:"), errors


# ---------------------------------------------------------------------------------------------------------------------
# Mutation tests: each check must fail on a template broken in the way it guards against
# ---------------------------------------------------------------------------------------------------------------------

MUTATIONS: list[tuple[str, str, str, str, str]] = [
    # (id, check, file, old text, new text)
    ("missing-colon", "syntax", "modules/storage.bicep", "kind: 'StorageV2'", "kind 'StorageV2'"),
    ("bicepparam-typo", "syntax", "main.bicepparam", "param baseName = 'scim'", "param baseName = 'scim"),
    (
        "module-unknown-param",
        "module_wiring",
        "main.bicep",
        "    skuName: storageSku\n",
        "    skuName: storageSku\n    sku: storageSku\n",
    ),
    ("bicepparam-unknown", "module_wiring", "main.bicepparam", "param baseName = 'scim'", "param baseNam = 'scim'"),
    (
        "old-api",
        "api_versions",
        "modules/functionapp.bicep",
        "Microsoft.Web/sites@2024-04-01",
        "Microsoft.Web/sites@2022-03-01",
    ),
    (
        "nested-child",
        "no_nested_children",
        "modules/storage.bicep",
        "    dnsEndpointType: 'Standard'\n",
        "    dnsEndpointType: 'Standard'\n  }\n  resource q 'queueServices' = {\n    name: 'default'\n",
    ),
    ("python-3.10", "flex_function_app", "modules/functionapp.bicep", "version: '3.11'", "version: '3.10'"),
    ("y1-plan", "flex_function_app", "modules/functionapp.bicep", "name: 'FC1'", "name: 'Y1'"),
    (
        "fixed-concurrency",
        "flex_function_app",
        "modules/functionapp.bicep",
        "perInstanceConcurrency: perInstanceConcurrency",
        "perInstanceConcurrency: 1",
    ),
    (
        "concurrency-default-1",
        "flex_function_app",
        "main.bicepparam",
        "param perInstanceConcurrency = 16",
        "param perInstanceConcurrency = 1",
    ),
    (
        "user-identity",
        "flex_function_app",
        "modules/functionapp.bicep",
        "type: 'SystemAssigned'\n",
        "type: 'UserAssigned'\n",
    ),
    ("http-allowed", "site_hardening", "modules/functionapp.bicep", "httpsOnly: true", "httpsOnly: false"),
    (
        "tls-1.0",
        "site_hardening",
        "modules/functionapp.bicep",
        "      minTlsVersion: '1.2'",
        "      minTlsVersion: '1.0'",
    ),
    ("ftps", "site_hardening", "modules/functionapp.bicep", "ftpsState: 'Disabled'", "ftpsState: 'FtpsOnly'"),
    (
        "remote-debug",
        "site_hardening",
        "modules/functionapp.bicep",
        "remoteDebuggingEnabled: false",
        "remoteDebuggingEnabled: true",
    ),
    (
        "flex-instance-floor",
        "flex_function_app",
        "main.bicep",
        "@minValue(40)\n@maxValue(1000)\nparam maximumInstanceCount",
        "@minValue(1)\n@maxValue(1000)\nparam maximumInstanceCount",
    ),
    (
        "weak-cipher",
        "site_hardening",
        "main.bicepparam",
        "param minTlsCipherSuite = ''",
        "param minTlsCipherSuite = 'TLS_RSA_WITH_AES_128_CBC_SHA'",
    ),
    (
        "scm-basic-auth",
        "site_hardening",
        "modules/functionapp.bicep",
        "name: 'scm'\n  properties: {\n    allow: false",
        "name: 'scm'\n  properties: {\n    allow: true",
    ),
    (
        "one-tag-only",
        "access_restrictions",
        "modules/functionapp.bicep",
        "'AzureActiveDirectory,AzureActiveDirectoryDomainServices'",
        "'AzureActiveDirectoryDomainServices'",
    ),
    (
        "open-by-default",
        "access_restrictions",
        "main.bicepparam",
        "param allowPublicAccessForTesting = false",
        "param allowPublicAccessForTesting = true",
    ),
    (
        "default-allow",
        "access_restrictions",
        "modules/functionapp.bicep",
        "allowPublicAccessForTesting ? 'Allow' : 'Deny'",
        "allowPublicAccessForTesting ? 'Allow' : 'Allow'",
    ),
    (
        "any-rule",
        "access_restrictions",
        "modules/functionapp.bicep",
        "    ipAddress: cidr\n  }\n]\n\nvar scmRules",
        "    ipAddress: 'Any'\n  }\n]\n\nvar scmRules",
    ),
    (
        "admin-cidrs-default",
        "access_restrictions",
        "main.bicepparam",
        "param allowedCidrs = []",
        "param allowedCidrs = ['0.0.0.0/0']",
    ),
    (
        "scm-allow",
        "scm_restrictions",
        "modules/functionapp.bicep",
        "scmIpSecurityRestrictionsDefaultAction: 'Deny'",
        "scmIpSecurityRestrictionsDefaultAction: 'Allow'",
    ),
    (
        "scm-use-main",
        "scm_restrictions",
        "modules/functionapp.bicep",
        "scmIpSecurityRestrictionsUseMain: false",
        "scmIpSecurityRestrictionsUseMain: true",
    ),
    ("shared-key", "storage", "modules/storage.bicep", "allowSharedKeyAccess: false", "allowSharedKeyAccess: true"),
    ("blob-public", "storage", "modules/storage.bicep", "allowBlobPublicAccess: false", "allowBlobPublicAccess: true"),
    ("storage-tls", "storage", "modules/storage.bicep", "minimumTlsVersion: 'TLS1_2'", "minimumTlsVersion: 'TLS1_0'"),
    (
        "storage-http",
        "storage",
        "modules/storage.bicep",
        "supportsHttpsTrafficOnly: true",
        "supportsHttpsTrafficOnly: false",
    ),
    (
        "no-oauth-default",
        "storage",
        "modules/storage.bicep",
        "defaultToOAuthAuthentication: true",
        "defaultToOAuthAuthentication: false",
    ),
    ("public-container", "storage", "modules/storage.bicep", "publicAccess: 'None'", "publicAccess: 'Blob'"),
    (
        "kv-role-on-storage",
        "role_assignments",
        "modules/roleassignments.bicep",
        "description: 'SCIM function app: read the SCIM bearer token secret (Key Vault reference)'\n  }\n}",
        "description: 'x'\n  }\n}\nresource extra 'Microsoft.Authorization/roleAssignments@2022-04-01' = {\n"
        "  name: guid(storage.id, principalId, roleIds.keyVaultSecretsUser)\n  scope: storage\n  properties: {\n"
        "    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', "
        "roleIds.keyVaultSecretsUser)\n    principalId: principalId\n    principalType: 'ServicePrincipal'\n  }\n}",
    ),
    ("wrong-scope", "role_assignments", "modules/roleassignments.bicep", "  scope: appInsights\n", "  scope: vault\n"),
    (
        "owner-role",
        "role_assignments",
        "modules/roleassignments.bicep",
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    ),
    (
        "user-principal",
        "role_assignments",
        "modules/roleassignments.bicep",
        "principalType: 'ServicePrincipal'\n    description: 'SCIM function app: send",
        "principalType: 'User'\n    description: 'SCIM function app: send",
    ),
    (
        "plain-token",
        "app_settings",
        "modules/appsettings.bicep",
        "SCIM_BEARER_TOKENS: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${scimTokenSecretName})'",
        "SCIM_BEARER_TOKENS: 'hello'",
    ),
    (
        "worker-runtime",
        "app_settings",
        "modules/appsettings.bicep",
        "    SCIM_TABLE_PREFIX:",
        "    FUNCTIONS_WORKER_RUNTIME: 'python'\n    SCIM_TABLE_PREFIX:",
    ),
    (
        "conn-string",
        "app_settings",
        "modules/appsettings.bicep",
        "    SCIM_TABLE_PREFIX:",
        "    SCIM_STORAGE_CONNECTION_STRING: 'x'\n    SCIM_TABLE_PREFIX:",
    ),
    ("aad-auth", "app_settings", "modules/appsettings.bicep", "'Authorization=AAD'", "''"),
    (
        "trailing-slash",
        "app_settings",
        "modules/storage.bicep",
        ".table.${environment().suffixes.storage}'",
        ".table.${environment().suffixes.storage}/'",
    ),
    ("local-auth", "monitoring", "modules/monitoring.bicep", "DisableLocalAuth: true", "DisableLocalAuth: false"),
    (
        "kv-access-policies",
        "key_vault",
        "modules/keyvault.bicep",
        "enableRbacAuthorization: true",
        "enableRbacAuthorization: false",
    ),
    (
        "kv-no-purge-protection",
        "key_vault",
        "modules/keyvault.bicep",
        "enablePurgeProtection: true",
        "enablePurgeProtection: false",
    ),
    (
        "token-default",
        "secure_params",
        "main.bicep",
        "param scimBearerToken string\n",
        "param scimBearerToken string = 'changeme'\n",
    ),
    (
        "token-not-secure",
        "secure_params",
        "modules/keyvault.bicep",
        "@secure()\nparam secretValue string",
        "param secretValue string",
    ),
    (
        "token-in-bicepparam",
        "secure_params",
        "main.bicepparam",
        "param scimBearerToken = readEnvironmentVariable('SCIM_BEARER_TOKEN', '')",
        "param scimBearerToken = 'hunter2hunter2'",
    ),
    ("guid-plus-literal", "secure_params", "main.bicep", "= '${newGuid()}${newGuid()}'", "= 'abc${newGuid()}'"),
    ("tenant-url", "outputs", "main.bicep", "}/scim/v2'", "}/api/scim/v2'"),
    (
        "token-output",
        "no_secret_outputs",
        "main.bicep",
        "output scimTokenSecretName string = scimTokenSecretName",
        "output scimTokenSecretName string = scimBearerToken",
    ),
    (
        "listkeys-output",
        "no_secret_outputs",
        "modules/storage.bicep",
        "output id string = storage.id",
        "output id string = storage.listKeys().keys[0].value",
    ),
    (
        "connstring-output",
        "no_secret_outputs",
        "modules/monitoring.bicep",
        "output appInsightsName string = appInsights.name",
        "output appInsightsName string = appInsights.properties.ConnectionString",
    ),
    ("missing-brace", "syntax", "modules/keyvault.bicep", "    value: secretValue\n", "    value: {secretValue\n"),
    (
        "queue-role",
        "role_assignments",
        "modules/roleassignments.bicep",
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    ),
    (
        "queue-sender-on-account",
        "role_assignments",
        "modules/roleassignments.bicep",
        "  scope: changeFeedQueue\n",
        "  scope: storage\n",
    ),
    (
        "queue-contributor",
        "role_assignments",
        "modules/roleassignments.bicep",
        "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a",
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    ),
    ("settings-before-roles", "app_settings", "main.bicep", "  dependsOn: [\n    roleAssignments\n  ]\n", ""),
    ("kv-no-soft-delete", "key_vault", "modules/keyvault.bicep", "enableSoftDelete: true", "enableSoftDelete: false"),
]


@pytest.mark.parametrize(("check", "file", "old", "new"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_check_catches_mutation(tmp_path: Path, check: str, file: str, old: str, new: str) -> None:
    copy = tmp_path / "infra"
    shutil.copytree(INFRA_DIR, copy)
    target = copy / file
    text = target.read_text()
    assert text.count(old) == 1, f"mutation anchor not found exactly once in {file}: {old!r}"
    target.write_text(text.replace(old, new))
    mutated = load_infra(copy.resolve())
    with pytest.raises(AssertionError):
        CHECKS[check](mutated)


# ---------------------------------------------------------------------------------------------------------------------
# Optional lint gate: checkov (heavy; install it outside the project venv, e.g. `pipx install checkov==3.3.30`)
# ---------------------------------------------------------------------------------------------------------------------


def _checkov() -> str | None:
    return os.environ.get("CHECKOV") or shutil.which("checkov")


@pytest.mark.skipif(_checkov() is None, reason="checkov not installed (optional; set CHECKOV=/path/to/checkov)")
def test_checkov() -> None:
    cmd = [
        str(_checkov()),
        "--config-file",
        str(INFRA_DIR / ".checkov.yaml"),
        "--directory",
        str(INFRA_DIR),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, cwd=REPO_ROOT)  # noqa: S603
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "Parsing errors" not in output and "parsing error" not in output.lower(), output[-6000:]


def test_the_setting_that_disables_the_timer_names_the_timer_function() -> None:
    """With the change feed off, the sweep's timer is disabled by an app setting named after the function: a rename
    in function_app.py must not leave the timer waking the app every minute."""
    settings = (INFRA_DIR / "modules" / "appsettings.bicep").read_text()
    disabled = re.findall(r"'AzureWebJobs\.(\w+)\.Disabled'", settings)
    app = (REPO_ROOT / "function_app.py").read_text()
    timers = re.findall(r"@app\.timer_trigger\([^)]*\)\s*\nasync def (\w+)", app)
    assert disabled == timers == ["change_feed_sweep"]
