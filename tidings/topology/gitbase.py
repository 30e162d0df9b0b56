"""The topology as a git ref has it: the base of a pull request, read without a checkout.

``topology diff`` and ``plan --base`` compare the working tree's topology.yaml with
the one at a ref. The ref's topology file and its schema directories are written to
a temporary directory (``git archive``), so the base loads and validates exactly as
the branch does, and no cluster or work tree switch is needed.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from tidings.errors import ConfigError
from tidings.topology.source import load_document


class GitError(ConfigError):
    """git is missing, the file is outside a repository, or the ref is unknown."""


@contextmanager
def checkout_at(path: Path, ref: str) -> Iterator[Path | None]:
    """The topology file ``path`` as it is at ``ref``, in a temporary directory.

    Yields the path of the base copy, or None when the file does not exist at ``ref``
    (a topology added by the branch itself).
    """
    path = path.resolve()
    top = Path((_git(path.parent, "rev-parse", "--show-toplevel") or "").strip())
    if _git(top, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False) is None:
        raise GitError(f"unknown git ref {ref!r}; fetch it first (in CI: actions/checkout "
                       "with fetch-depth: 0, or git fetch origin <base branch>)")
    relative = PurePosixPath(path.relative_to(top.resolve()).as_posix())
    with tempfile.TemporaryDirectory(prefix="tidings-base-") as tmp:
        text = _git(top, "show", f"{ref}:{relative}", check=False)
        if text is None:
            yield None
            return
        wanted = [str(relative), *_schema_dirs(text, relative, top, ref)]
        archive = _git_bytes(top, "archive", "--format=tar", ref, "--", *wanted)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later
                tar.extractall(tmp, filter="data")
            else:  # pragma: no cover - git archive writes plain files only
                tar.extractall(tmp)
        yield Path(tmp) / relative


def _schema_dirs(text: str, relative: PurePosixPath, top: Path, ref: str) -> list[str]:
    """The directories (repository-relative) that hold the base's schema files."""
    data = load_document(text).data
    events = data.get("events") if isinstance(data, dict) else None
    found: dict[str, None] = {}
    for spec in (events or {}).values() if isinstance(events, dict) else ():
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, str):
            continue
        folder = (relative.parent / schema).parent
        # Reject paths that climb out of the repository; the base must load on its own.
        if ".." in folder.parts:
            continue
        if _git(top, "cat-file", "-e", f"{ref}:{folder}", check=False) is not None:
            found.setdefault(str(folder), None)
    return list(found)


def _git(cwd: Path, *args: str, check: bool = True) -> str | None:
    raw = _run(cwd, args, check)
    return raw.decode("utf-8", errors="replace") if raw is not None else None


def _git_bytes(cwd: Path, *args: str) -> bytes:
    raw = _run(cwd, args, True)
    assert raw is not None
    return raw


def _run(cwd: Path, args: tuple[str, ...], check: bool) -> bytes | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError:
        raise GitError("git is not installed; topology diff reads the base from git") from None
    if done.returncode == 0:
        return done.stdout
    if not check:
        return None
    message = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
    if args[0] == "rev-parse" and "--show-toplevel" in args:
        raise GitError(f"{cwd} is not inside a git repository; topology diff compares "
                       "against a git ref")
    raise GitError(f"git {args[0]} failed: {message[-1] if message else done.returncode}")
