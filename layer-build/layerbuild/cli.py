"""`lambda-wrapper layer build|publish`; `main` takes the arguments after `layer`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .architectures import ARCHITECTURES, host_architecture
from .build import DEFAULT_OUT, FORMATS, build
from .errors import LayerBuildError
from .progress import STDERR
from .publish import publish_layer

PROG = "lambda-wrapper layer"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Build and publish the lambda-wrapper Lambda layer."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{build,publish}")

    build_cmd = commands.add_parser("build", help="build the layer zip(s) or an unzipped layer tree")
    build_cmd.add_argument(
        "--arch",
        choices=[*ARCHITECTURES, "all"],
        default=None,
        help="Lambda architecture, or all (default: this machine's)",
    )
    build_cmd.add_argument(
        "--format", choices=FORMATS, default="zip", help="zip per architecture (default) or dir"
    )
    build_cmd.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"zip: output directory (default {DEFAULT_OUT}/); dir: the tree itself "
        f"(default {DEFAULT_OUT}/lambda-wrapper-<version>-<arch>/)",
    )

    publish_cmd = commands.add_parser(
        "publish", help="publish a built zip as a new layer version (needs boto3)"
    )
    publish_cmd.add_argument(
        "--zip", type=Path, required=True, help="a zip from `layer build` (manifest beside it)"
    )
    publish_cmd.add_argument("--name", required=True, help="layer name or layer ARN")
    publish_cmd.add_argument("--arch", choices=list(ARCHITECTURES), help="must match the zip's manifest")
    publish_cmd.add_argument("--region", help="AWS region (default: from the AWS configuration)")
    publish_cmd.add_argument("--endpoint-url", help="alternative Lambda endpoint (e.g. a local fake)")
    publish_cmd.add_argument("--description", help="layer version description (default: from the manifest)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_:  # argparse exits on --help (0) and on usage errors (2)
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        if args.command == "build":
            return _build(args)
        return _publish(args)
    except LayerBuildError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130


def _build(args: argparse.Namespace) -> int:
    if args.arch is None:
        args.arch = host_architecture().name
    for path in build(arch=args.arch, format=args.format, out=args.out, progress=STDERR):
        print(path)
    return 0


def _publish(args: argparse.Namespace) -> int:
    response = publish_layer(
        args.zip,
        args.name,
        arch=args.arch,
        region=args.region,
        endpoint_url=args.endpoint_url,
        description=args.description,
    )
    print(response["LayerVersionArn"])
    return 0
