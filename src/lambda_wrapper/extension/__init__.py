"""The in-process Lambda extension: platform APIs, telemetry listener and event loop.

It knows the platform and nothing of export formats: what it receives goes to the
export package.
"""
