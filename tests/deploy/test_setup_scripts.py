"""``serve.sh``'s set-up installs what serving needs and nothing for testing (issue 14, item 4).

Runs ``scripts/setup.sh serve`` for real (a new virtualenv, pip from requirements.txt; about 20 s) in a copy of the
committed tree, with this checkout's Azurite in place so npm is not asked again.
"""

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENT = dict(os.environ)
"""As the session started: other tests' fixtures point REQUESTS_CA_BUNDLE at throw-away CAs, which pip then uses."""


def test_serve_setup_installs_the_runtime_and_not_the_test_tools(tmp_path: Path) -> None:
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=REPO_ROOT, check=True, capture_output=True)  # noqa: S607
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tree:
        tree.extractall(tmp_path, filter="data")
    azurite = REPO_ROOT / "node_modules" / "azurite" / "package.json"
    assert '"version": "3.35.0"' in azurite.read_text()  # so setup.sh reads node_modules and never writes to it
    (tmp_path / "node_modules").symlink_to(REPO_ROOT / "node_modules")
    assert "serve" in (tmp_path / "scripts" / "serve.sh").read_text().split("setup.sh", 1)[1].splitlines()[0]

    env = {**ENVIRONMENT, "PYTHON": sys.executable}
    subprocess.run(["bash", "scripts/setup.sh", "serve"], cwd=tmp_path, env=env, check=True, timeout=300)  # noqa: S607

    assert not (tmp_path / ".venv-checkov").exists()
    python = str(tmp_path / ".venv" / "bin" / "python")
    probe = "import importlib.util as u; print([m for m in {} if u.find_spec(m)])"
    runtime = ["azure.functions", "azure.data.tables", "aiohttp", "scim2_models", "jwt", "msal"]
    testing = ["pytest", "ruff", "hypothesis", "scim2_tester", "tree_sitter"]
    command = [python, "-c", probe.format(runtime + testing)]
    found = subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603
    assert found.stdout.strip() == str(runtime)
