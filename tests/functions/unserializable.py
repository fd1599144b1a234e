"""Returns a value the JSON encoder rejects."""


def handler(event, context):
    return {"items": {1, 2, 3}}
