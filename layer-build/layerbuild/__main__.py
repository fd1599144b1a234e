"""`python -m layerbuild build ...` (with layer-build/ on sys.path) works without the main CLI."""

import sys

from .cli import main

sys.exit(main())
