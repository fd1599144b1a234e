"""``lambda-wrapper``: run | layer | telemetry decode | doctor.

Never imported by the cold path; each subcommand imports what it needs when chosen.
"""

from __future__ import annotations

import sys
from pathlib import Path

USAGE = """usage: lambda-wrapper <command> [options]

commands:
  run               run a function in the local Lambda sandbox (see `run --help`)
  layer build       build the layer (zip or dir) for x86_64/arm64
  layer publish     publish a built layer with boto3
  telemetry decode  decode Telemetry API batches (JSON arrays) to one JSON object per event
  doctor            print effective settings, problems and what was detected
"""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "run":
        from .sandbox.run_command import main as run_main

        return run_main(rest)
    if command == "layer":
        return _layer(rest)
    if command == "telemetry":
        if not rest or rest[0] != "decode":
            print("usage: lambda-wrapper telemetry decode FILE...", file=sys.stderr)
            return 2
        from .telemetry_decode import decode_files

        return decode_files(rest[1:], sys.stdout, sys.stderr)
    if command == "doctor":
        from lambda_wrapper.doctor import main as doctor_main

        return doctor_main(rest)
    print(f"lambda-wrapper: unknown command {command!r}\n\n{USAGE}", file=sys.stderr, end="")
    return 2


def _layer(rest: list[str]) -> int:
    build_dir = Path(__file__).resolve().parents[2] / "layer-build"
    if not (build_dir / "layerbuild").is_dir():
        print(f"lambda-wrapper layer: needs a source checkout (no {build_dir})", file=sys.stderr)
        return 2
    sys.path.insert(0, str(build_dir))
    from layerbuild.cli import main as layer_main

    return int(layer_main(rest))


if __name__ == "__main__":
    raise SystemExit(main())
