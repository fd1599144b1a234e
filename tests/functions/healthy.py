"""Returns a dict built from the event and the context."""


def handler(event, context):
    return {"ok": True, "event": event, "function": context.function_name}
