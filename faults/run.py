"""``python -m faults.run [--short] [--out docs/reliability.md]``: run the fault suite.

Exit status 0 when every scenario passed. The short form tolerates scenarios the
sandbox cannot reproduce yet (``unsupported``); the full form does not.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from .model import FULL, SHORT
from .report import failures, render
from .suite import FAMILIES, run_suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m faults.run", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the short form `make test` runs")
    parser.add_argument(
        "--out", type=Path, default=None, help="write the report here (e.g. docs/reliability.md)"
    )
    parser.add_argument("--only", default="", help=f"comma list of families: {','.join(FAMILIES)}")
    parser.add_argument("--work", type=Path, default=None, help="keep function /tmp dirs etc. here")
    args = parser.parse_args(argv)
    _quiet_sandbox_logs()
    form = SHORT if args.short else FULL
    only = [name for name in args.only.split(",") if name]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="faults-") as scratch:
        work = args.work or Path(scratch)
        results = run_suite(form, work, only=only, progress=lambda line: print(line, flush=True))
    elapsed = time.monotonic() - started
    report = render(results, form, elapsed)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
        print(f"wrote {args.out}")
    print(report)
    failed = failures(results, allow_unsupported=form.short)
    for result in failed:
        print(f"FAILED: {result.scenario}: {result.failed_checks or result.unsupported}", file=sys.stderr)
    return 1 if failed else 0


def _quiet_sandbox_logs() -> None:
    # The sandbox logs every invoke at info; thousands of lines would bury the report.
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


if __name__ == "__main__":
    raise SystemExit(main())
