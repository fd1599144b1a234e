"""Decoding of Lambda Telemetry API (and legacy Logs API) batches; see ``decode`` and ``records``."""
