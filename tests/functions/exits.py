"""Calls sys.exit(3) inside the handler."""

import sys


def handler(event, context):
    sys.exit(3)
