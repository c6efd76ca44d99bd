"""Every third-party package the app imports is pinned in ``requirements.txt`` (remote build installs that file and
nothing else), not merely present because another package happens to depend on it today."""

import ast
import importlib.util
import re
import sys
from functools import cache
from importlib.metadata import distributions
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def imported_modules() -> set[str]:
    modules: set[str] = set()
    for source in [REPO_ROOT / "function_app.py", *sorted((REPO_ROOT / "scim").rglob("*.py"))]:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module)
    return {m for m in modules if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] != "scim"}


@cache
def owners() -> dict[Path, str]:
    """Installed file → the distribution that installed it (``azure`` is a namespace shared by several)."""
    return {
        Path(str(dist.locate_file(file))).resolve(): dist.metadata["Name"]
        for dist in distributions()
        for file in dist.files or ()
    }


def distribution_of(module: str) -> str:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, f"{module} is imported but not installed"
    return owners()[Path(spec.origin).resolve()]


def pinned() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==(\S+)", line.split("#")[0].strip())
        if match:
            pins[_normalise(match.group(1))] = match.group(3)
    return pins


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_package_is_pinned() -> None:
    needed = {_normalise(distribution_of(module)) for module in imported_modules()}
    assert {"pydantic", "azure-core", "scim2-models"} <= needed  # the check sees direct imports of transitive deps
    assert needed - pinned().keys() == set(), "imported but not pinned in requirements.txt"
