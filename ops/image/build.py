"""Build the Tidings image (ops/image/Dockerfile) with podman or docker.

    python -m ops.image.build                       # docker or podman, base and wheels from the net
    python -m ops.image.build --local-base --wheels --offline   # as the tests do it here

``--local-base`` makes the base image with ``mmdebstrap`` (Debian bookworm, minbase, plus
python3 and python3-venv) and imports it as ``localhost/tidings-base:bookworm``, for
machines that reach Debian's mirror but no image registry. ``--wheels`` fills
``ops/image/wheels/`` with wheels of every dependency, built once on this machine and
cached under ``~/.cache/tidings/image/``; with ``--offline`` the build installs from them
alone (``PIP_NO_INDEX=1``), so it needs no network and a rebuild after a code change
only reinstalls the project. Both are cached: a second build takes seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "ops" / "image" / "Dockerfile"
WHEELS = REPO / "ops" / "image" / "wheels"
LOCAL_BASE = "localhost/tidings-base:bookworm"
DEFAULT_TAG = "localhost/tidings:dev"
BASE_PACKAGES = "python3,python3-venv"
#: The Python of Debian bookworm, which the local base has: host-built wheels fit it only
#: when the host runs the same minor version.
LOCAL_BASE_PYTHON = (3, 11)


class BuildError(Exception):
    """The image could not be built; the message says which step and why."""


def cache_dir() -> Path:
    explicit = os.environ.get("TIDINGS_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser() / "image"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "tidings" / "image"


def find_engine(preferred: str | None = None) -> str | None:
    """``podman`` or ``docker``, whichever is installed (``preferred`` first)."""
    for name in ([preferred] if preferred else ["podman", "docker"]):
        if name and shutil.which(name):
            return name
    return None


def engine_env(engine: str) -> dict[str, str]:
    """The environment to run ``engine`` in. For podman without a ``CONTAINERS_CONF`` of
    the user's, ours: runc where crun is missing (Debian's podman depends on either), and
    ulimits a container may raise to inside a sandboxed host."""
    env = dict(os.environ)
    if Path(engine).name != "podman" or "CONTAINERS_CONF" in env:
        return env
    conf = cache_dir() / "containers.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    lines = ["[containers]",
             'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]']
    if not shutil.which("crun") and shutil.which("runc"):
        lines += ["[engine]", 'runtime = "runc"']
    text = "\n".join(lines) + "\n"
    if not conf.exists() or conf.read_text() != text:
        conf.write_text(text)
    env["CONTAINERS_CONF"] = str(conf)
    return env


def _run(args: list[str], env: dict[str, str], what: str, **kwargs: object) -> None:
    result = subprocess.run(args, env=env, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise BuildError(f"{what} failed (exit {result.returncode}):\n{tail}")


def image_exists(engine: str, image: str, env: dict[str, str]) -> bool:
    return subprocess.run([engine, "image", "inspect", image], env=env,
                          capture_output=True).returncode == 0


def ensure_local_base(engine: str, env: dict[str, str]) -> str:
    """The mmdebstrap-made base image, imported into ``engine`` once."""
    if image_exists(engine, LOCAL_BASE, env):
        return LOCAL_BASE
    if not shutil.which("mmdebstrap"):
        raise BuildError("--local-base needs mmdebstrap (apt-get install mmdebstrap)")
    tarball = cache_dir() / "base-bookworm.tar"
    tarball.parent.mkdir(parents=True, exist_ok=True)
    if not tarball.exists():
        # mmdebstrap picks the output format by the name's extension: keep ".tar".
        partial = tarball.with_name("base-bookworm.partial.tar")
        if partial.is_dir():
            shutil.rmtree(partial)
        partial.unlink(missing_ok=True)
        _run(["mmdebstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm",
              str(partial)], env, "mmdebstrap (making the Debian base)", timeout=1200)
        partial.rename(tarball)
    _run([engine, "import", str(tarball), LOCAL_BASE], env, f"{engine} import", timeout=600)
    return LOCAL_BASE


def _dependencies() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    build = project["build-system"]["requires"]
    return [*build, *project["project"]["dependencies"]]


def wheels_fit_local_base() -> bool:
    """Whether wheels built by this interpreter install in the local (bookworm) base."""
    return sys.version_info[:2] == LOCAL_BASE_PYTHON


def ensure_wheels() -> int:
    """Fill ops/image/wheels/ with wheels of every dependency (and the build backend);
    returns how many. Built with this interpreter, so it must be the base's Python
    minor version (3.11 for Debian bookworm)."""
    deps = _dependencies()
    digest = hashlib.sha256(
        "\n".join([sys.version.split()[0].rsplit(".", 1)[0], *deps]).encode()).hexdigest()[:16]
    cached = cache_dir() / f"wheels-{digest}"
    if not (cached / ".complete").exists():
        shutil.rmtree(cached, ignore_errors=True)
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(cached),
              *deps], dict(os.environ), "pip wheel (the image's wheelhouse)", timeout=1800)
        (cached / ".complete").touch()
    WHEELS.mkdir(parents=True, exist_ok=True)
    for old in WHEELS.glob("*.whl"):
        old.unlink()
    count = 0
    for wheel in cached.glob("*.whl"):
        target = WHEELS / wheel.name
        try:
            os.link(wheel, target)
        except OSError:
            shutil.copy2(wheel, target)
        count += 1
    return count


def build(*, engine: str, tag: str = DEFAULT_TAG, base: str | None = None,
          offline: bool = False, network: str | None = None) -> str:
    """Build the image and return its tag."""
    env = engine_env(engine)
    args = [engine, "build", "-f", str(DOCKERFILE), "-t", tag]
    if base:
        args += ["--build-arg", f"BASE_IMAGE={base}"]
    if offline:
        args += ["--build-arg", "PIP_NO_INDEX=1"]
    if network:
        args += ["--network", network]
    _run([*args, str(REPO)], env, f"{engine} build", timeout=1800)
    return tag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.image.build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["podman", "docker"], default=None)
    parser.add_argument("--tag", default=DEFAULT_TAG)
    parser.add_argument("--base", default=None, help="base image (build-arg BASE_IMAGE)")
    parser.add_argument("--local-base", action="store_true",
                        help=f"make the base with mmdebstrap ({LOCAL_BASE})")
    parser.add_argument("--wheels", action="store_true",
                        help="build the dependencies' wheels here first (ops/image/wheels/)")
    parser.add_argument("--offline", action="store_true",
                        help="install from ops/image/wheels/ only (implies --wheels)")
    args = parser.parse_args(argv)
    engine = find_engine(args.engine)
    if engine is None:
        print("build: neither podman nor docker is installed", file=sys.stderr)
        return 1
    try:
        base = args.base
        if args.local_base:
            base = ensure_local_base(engine, engine_env(engine))
        if args.wheels or args.offline:
            print(f"build: {ensure_wheels()} wheels in {WHEELS.relative_to(REPO)}")
        tag = build(engine=engine, tag=args.tag, base=base, offline=args.offline,
                    network="host" if args.offline else None)
    except BuildError as exc:
        print(f"build: {exc}", file=sys.stderr)
        return 1
    print(f"build: {tag} built with {engine}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
