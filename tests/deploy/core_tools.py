"""Which files ``func azure functionapp publish`` puts into the package, computed the way Core Tools does.

Written from Azure Functions Core Tools' source (github.com/Azure/azure-functions-core-tools, commit 3ee97a6,
2026-08-20), not copied from it:

- ``Helpers/PublishHelper.cs`` ``GetIgnoreParser``: the rules come from ``.funcignore`` in the app root and nowhere
  else (``.gitignore`` is not read).
- ``Common/FileSystemHelpers.cs`` ``GetLocalFiles``/``GetFiles``: every file under the root, recursively (directory
  symlinks followed), except directories named ``.git`` or ``.vscode`` and files named ``.funcignore``,
  ``.gitignore``, ``local.settings.json`` or ``project.lock.json``, at any depth, names compared case-insensitively.
  Each remaining file's path relative to the root, with ``/`` separators, is kept when the parser ``Accepts`` it.
- ``Common/GitIgnoreParser.cs`` (a port of the npm package ``gitignore-parser``), which is *not* git's matcher:
  lines are trimmed; blank lines and ``#`` lines are skipped; ``!`` makes a negative pattern; one leading ``/`` is
  dropped. Each pattern has the regex metacharacters ``-[]/{}()+?.\\^$|`` escaped, then ``**`` becomes ``(.+)`` and
  ``*`` becomes ``([^/]+)``. The positive patterns form one regex ``^((p1)|(p2)|…)\\b`` (ECMAScript: ASCII word
  characters), and so do the negative ones. A path is accepted when a negative pattern matches or no positive one
  does; the order of lines does not matter and a negative pattern always wins.

What follows for writing ``.funcignore``: every pattern is anchored at the root (``__pycache__`` does not reach
``scim/__pycache__``: ``**/__pycache__`` does); a pattern matches a path that *starts* with it up to a word boundary
(``tests`` excludes ``tests/unit/x.py`` but not ``testsuite.py``; ``.venv`` also excludes ``.venv-checkov/``); and a
negation cannot carve an exception out of an excluded directory, it re-includes everything it matches.

- ``Helpers/ZipHelper.cs`` / ``PythonHelpers.GetPythonDeploymentPackage``: for Python with the (default) remote build,
  the package is exactly that list plus an empty ``.python_packages/`` that Core Tools recreates.
"""

import os
import re
from collections.abc import Iterator
from pathlib import Path

IGNORED_DIRECTORIES = (".git", ".vscode")
IGNORED_FILES = (".funcignore", ".gitignore", "local.settings.json", "project.lock.json")
_METACHARACTERS = re.compile(r"[\-\[\]/{}()+?.\\^$|]")


class FuncIgnore:
    """The accept/deny decision Core Tools' ``GitIgnoreParser`` makes for one relative path."""

    def __init__(self, text: str) -> None:
        positive: list[str] = []
        negative: list[str] = []
        for raw in text.split("\n"):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            target = positive
            if line.startswith("!"):
                target, line = negative, line[1:]
            if line.startswith("/"):
                line = line[1:]
            target.append(line)
        self._positive = _union(sorted(positive))
        self._negative = _union(sorted(negative))

    def accepts(self, path: str) -> bool:
        return bool(self._negative.match(path)) or not self._positive.match(path)


def _union(patterns: list[str]) -> re.Pattern[str]:
    if not patterns:
        return re.compile(r"$^")
    return re.compile("^((" + ")|(".join(_regex(p) for p in patterns) + r"))\b", re.ASCII)


def _regex(pattern: str) -> str:
    escaped = _METACHARACTERS.sub(lambda m: "\\" + m.group(0), pattern)
    return escaped.replace("**", "(.+)").replace("*", "([^\\/]+)")


def local_files(root: Path) -> Iterator[str]:
    """Every file Core Tools considers, before ``.funcignore``: relative, ``/``-separated."""
    for directory, subdirectories, files in os.walk(root, followlinks=True):
        subdirectories[:] = [d for d in subdirectories if d.lower() not in IGNORED_DIRECTORIES]
        for name in files:
            if name.lower() not in IGNORED_FILES:
                yield (Path(directory) / name).relative_to(root).as_posix()


def published_files(root: Path) -> set[str]:
    """The files ``func azure functionapp publish`` uploads from ``root`` (no ``.funcignore``: all of them)."""
    rules = root / ".funcignore"
    ignore = FuncIgnore(rules.read_text()) if rules.exists() else None
    return {path for path in local_files(root) if ignore is None or ignore.accepts(path)}


if __name__ == "__main__":
    for path in sorted(published_files(Path.cwd())):
        print(path)
