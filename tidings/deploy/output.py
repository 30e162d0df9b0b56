"""Writing rendered manifests to a directory, replacing only what an earlier render wrote."""

from __future__ import annotations

from pathlib import Path

import yaml

from tidings.deploy.errors import DeployError
from tidings.deploy.render import Manifest


class _Dumper(yaml.SafeDumper):
    """Writes repeated dicts out in full: anchors (&id001) puzzle people and some tools."""

    def ignore_aliases(self, data: object) -> bool:
        return True


HEADER = "# Rendered by `tidings deploy render` from {source}. Do not edit: render again.\n"
_MARK = "# Rendered by `tidings deploy render`"


def write_manifests(manifests: list[Manifest], out: Path, *, source: str) -> list[Path]:
    """Write one YAML file per manifest (documents separated by ``---``) and remove the
    files an earlier render wrote that this one no longer has (a deleted group, say).
    Files that are not ours are left alone. Returns the paths written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DeployError(f"{out}: cannot create the output directory: {exc.strerror}") from None
    written: list[Path] = []
    for manifest in manifests:
        path = out / manifest.filename
        body = yaml.dump_all(manifest.objects, Dumper=_Dumper, sort_keys=False,
                             default_flow_style=False, explicit_start=True)
        path.write_text(HEADER.format(source=source) + body, encoding="utf-8")
        written.append(path)
    keep = {path.name for path in written}
    for stale in out.glob("*.yaml"):
        if stale.name not in keep and _is_ours(stale):
            stale.unlink()
    return written


def _is_ours(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as handle:
            return handle.readline().startswith(_MARK)
    except (OSError, UnicodeDecodeError):
        return False
