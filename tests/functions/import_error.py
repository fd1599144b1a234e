"""Fails while being imported (during Init).

Each attempt is counted in /tmp (which survives a reset), so a test can see that the
next invoke after the failed Init really initialises again.
"""

import os
from pathlib import Path

# TMPDIR is unset on Lambda; a local platform without mounts points it at its /tmp.
attempts = Path(os.environ.get("TMPDIR", "/tmp")) / "import_error_attempts"
attempts.write_text(str(int(attempts.read_text()) + 1 if attempts.exists() else 1))

raise RuntimeError("import-time failure")


def handler(event, context):
    return "never"
