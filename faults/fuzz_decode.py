"""atheris target: ``decode_batch`` may only ever raise ``UnreadableBatch``.

Run as ``python -m faults.fuzz_decode -runs=N``; atheris exits the process when done.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from lambda_wrapper.telemetry.decode import UnreadableBatch, decode_batch, is_own_diagnostic


def one_input(data: bytes) -> None:
    try:
        batch = decode_batch(data)
    except UnreadableBatch:
        return
    for event in batch.events:
        event.to_output()
        is_own_diagnostic(event, {"LambdaWrapper"})


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
