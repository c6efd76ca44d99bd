"""Both deploy paths of the README ship the runtime files and nothing else (issue 14, item 1).

``func azure functionapp publish`` reads ``.funcignore`` with its own matcher (``tests/deploy/core_tools.py``); the
zip alternative is the README's ``git archive`` command, run as written. Each is computed on a copy of the
repository as a user has it after ``scripts/setup.sh``, the tests and a local run (virtualenvs, ``node_modules``,
Azurite data, caches, ``local.settings.json``), and both must equal the runtime set: ``function_app.py``,
``host.json``, ``requirements.txt`` and the tracked files under ``scim/`` except the local host ``scim/local/``.
"""

import ast
import io
import re
import shlex
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.deploy.core_tools import FuncIgnore, published_files

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNTIME_FILES = {"function_app.py", "host.json", "requirements.txt"}
LOCAL_ONLY = "scim/local/"

ARTEFACTS = (
    ".venv/bin/python",
    ".venv/lib/python3.11/site-packages/pytest/__init__.py",
    ".venv-checkov/lib/python3.11/site-packages/checkov/main.py",
    "venv/pyvenv.cfg",
    "node_modules/azurite/package.json",
    "node_modules/.bin/azurite-table",
    ".azurite/__azurite_db_table__.json",
    "__azurite_db_table__.json",
    "__blobstorage__/x",
    "__queuestorage__/x",
    "scim/__pycache__/dispatch.cpython-311.pyc",
    "scim/store/__pycache__/tables.cpython-311.pyc",
    "__pycache__/function_app.cpython-311.pyc",
    "tests/unit/__pycache__/test_auth.cpython-311-pytest-9.2.0.pyc",
    ".pytest_cache/v/cache/lastfailed",
    ".ruff_cache/0.17.6/123",
    ".hypothesis/examples/ab/cd",
    "bench/results/soak.json",
    "local.settings.json",
    "scim/local.settings.json",
    ".env",
    ".vscode/settings.json",
    "app.zip",
)
"""What set-up, the tests, a local run and the README's own commands leave in a clone (git-ignored, untracked)."""


def tracked_files() -> list[str]:
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", "HEAD"],  # noqa: S607
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return listing.stdout.splitlines()


def expected_package() -> set[str]:
    return RUNTIME_FILES | {p for p in tracked_files() if p.startswith("scim/") and not p.startswith(LOCAL_ONLY)}


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of HEAD as a user's working tree looks after set-up, tests and a local run."""
    root = tmp_path_factory.mktemp("clone")
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=REPO_ROOT, check=True, capture_output=True)  # noqa: S607
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tree:
        tree.extractall(root, filter="data")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    for artefact in ARTEFACTS:
        target = root / artefact
        assert target.resolve().is_relative_to(root.resolve()), f"{artefact} would be written outside the copy"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("x")
    return root


def test_funcignore_is_tracked() -> None:
    assert ".funcignore" in tracked_files(), "commit .funcignore: without it Core Tools uploads everything"


def test_core_tools_publishes_only_the_runtime_files(clone: Path) -> None:
    published = published_files(clone)
    assert published - {*expected_package()} == set(), "would be uploaded: add it to .funcignore"
    assert expected_package() - published == set(), "the runtime needs these: .funcignore must not exclude them"


def test_without_funcignore_core_tools_would_upload_everything(clone: Path, tmp_path: Path) -> None:
    """The test above can fail: the same clone without ``.funcignore`` ships the virtualenvs and node_modules."""
    bare = tmp_path / "bare"
    shutil.copytree(clone, bare, symlinks=True)
    (bare / ".funcignore").unlink()
    published = published_files(bare)
    assert {".venv/bin/python", "node_modules/azurite/package.json", "tests/conftest.py"} <= published
    assert "local.settings.json" not in published  # one of Core Tools' fixed defaults
    assert ".git/HEAD" not in published  # another


def test_this_checkout_would_publish_only_the_runtime_files() -> None:
    """The real working tree, whatever set-up and the tests left in it (in CI: .venv, node_modules, .azurite)."""
    stray = {
        path
        for path in published_files(REPO_ROOT)
        if path not in RUNTIME_FILES and not (path.startswith("scim/") and not path.startswith(LOCAL_ONLY))
    }
    assert stray == set(), "would be uploaded: add it to .funcignore"


def readme_zip_command() -> list[str]:
    """The README's zip-deploy command, exactly as a user copies it."""
    readme = (REPO_ROOT / "README.md").read_text()
    lines = [line.strip() for line in readme.splitlines() if line.strip().startswith("git archive")]
    assert len(lines) == 1, "the README shows one `git archive` command for the zip deploy"
    return shlex.split(lines[0])


def test_readme_zip_ships_the_same_files_as_core_tools(clone: Path, tmp_path: Path) -> None:
    command = readme_zip_command()
    assert command[:2] == ["git", "archive"]
    output = command.index("-o") + 1
    command[output] = str(tmp_path / command[output])
    subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True)  # noqa: S603
    with zipfile.ZipFile(command[output]) as package:
        zipped = {name for name in package.namelist() if not name.endswith("/")}
    assert zipped == expected_package()
    assert zipped == published_files(clone)


def imported_scim_modules(entry: Path) -> set[str]:
    """Every ``scim`` module the entry point can import, statically, including imports inside functions (JWT mode and
    managed identity import theirs lazily)."""
    seen: set[str] = set()
    pending = [entry]
    while pending:
        tree = ast.parse(pending.pop().read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                path = _module_path(name)
                if path is not None and name not in seen:
                    seen.add(name)
                    pending.append(path)
    return {_module_path(name).relative_to(REPO_ROOT).as_posix() for name in seen}  # type: ignore[union-attr]


def _module_path(name: str) -> Path | None:
    if not re.fullmatch(r"scim(\.\w+)*", name):
        return None
    base = REPO_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def test_the_package_holds_everything_function_app_imports() -> None:
    needed = imported_scim_modules(REPO_ROOT / "function_app.py")
    assert "scim/dispatch.py" in needed
    assert needed - expected_package() == set(), "function_app.py imports these, so they must ship"
    assert not any(path.startswith(LOCAL_ONLY) for path in needed)


# Core Tools' matcher: behaviours our .funcignore relies on (see tests/deploy/core_tools.py).


def test_patterns_are_anchored_at_the_root() -> None:
    rules = FuncIgnore("__pycache__\ntests\n")
    assert not rules.accepts("__pycache__/a.pyc")
    assert rules.accepts("scim/__pycache__/a.pyc")
    assert rules.accepts("scim/tests/x.py")
    assert not FuncIgnore("**/__pycache__").accepts("scim/store/__pycache__/a.pyc")


def test_a_pattern_matches_up_to_a_word_boundary() -> None:
    rules = FuncIgnore(".venv\ntest\n")
    assert not rules.accepts(".venv-checkov/bin/checkov")
    assert rules.accepts("tests/x.py")
    assert not rules.accepts("test/x.py")


def test_a_star_stops_at_a_slash_and_a_negation_always_wins() -> None:
    rules = FuncIgnore("*.log\n!scim\nscim/local\n# comment\n\n/foo/*.wat\n")
    assert not rules.accepts("x.log")
    assert rules.accepts("logs/x.log")
    assert rules.accepts("scim/local/host.py")
    assert not rules.accepts("foo/bar.wat")
