"""Raises inside the handler; the message carries the request id (masked by the test)."""


class ValidationFailed(Exception):
    pass


def handler(event, context):
    raise ValidationFailed(f"bad input in {context.aws_request_id}")
