"""``tidings deploy render --target k8s``: Kubernetes manifests from topology.yaml."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tidings.cli._environment_arg import add_env_argument
from tidings.deploy import RenderOptions, render_k8s, write_manifests
from tidings.settings import Settings
from tidings.topology import load_topology
from tidings.topology.load import display_name


def register(sub: Any) -> None:
    parser = sub.add_parser("deploy", help="deployment manifests from topology.yaml")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    render = actions.add_parser("render", help="write Kubernetes manifests to a directory")
    render.add_argument("-f", "--file", type=Path, default=None,
                        help="the topology file (default: $TIDINGS_TOPOLOGY or ./topology.yaml)")
    render.add_argument("--target", choices=["k8s"], default="k8s",
                        help="what to render for (only k8s: Kubernetes with Strimzi and KEDA)")
    render.add_argument("--image", default=None,
                        help="the image every service runs (default: deploy.image)")
    render.add_argument("--namespace", default=None,
                        help="namespace of every object (default: deploy.namespace, or none)")
    render.add_argument("--out", type=Path, required=True,
                        help="directory to write; files an earlier render wrote are replaced")
    add_env_argument(render)
    render.set_defaults(func=cmd_render)


def cmd_render(args: argparse.Namespace) -> int:
    path = Path(args.file) if args.file else Settings().topology
    # The image has the handlers; rendering needs only the declaration.
    topology = load_topology(path, check_imports=False, env=args.env)
    rendered = render_k8s(topology, RenderOptions(image=args.image, namespace=args.namespace))
    written = write_manifests(rendered.manifests, args.out, source=display_name(topology.path))
    kinds = Counter(obj["kind"] for obj in rendered.objects())
    summary = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
    print(f"wrote {len(written)} files to {args.out}: {summary}")
    for warning in rendered.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
