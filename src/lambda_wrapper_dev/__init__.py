"""Development tooling for lambda-wrapper: the local Lambda sandbox, the ``lambda-wrapper`` CLI and
``telemetry decode``. Never shipped in the layer; the runtime package ``lambda_wrapper`` never imports it."""
