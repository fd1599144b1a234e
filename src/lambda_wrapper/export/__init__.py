"""Export: batching, flush policy, the /tmp spool and one module per exporter.

It knows nothing of where telemetry came from: it gets decoded events.
"""
