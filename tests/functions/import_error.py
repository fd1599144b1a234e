"""Fails while being imported (during Init)."""

raise RuntimeError("import-time failure")


def handler(event, context):
    return "never"
