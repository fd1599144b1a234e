"""A handler in a subdirectory, named ``sub/mod.handler``."""


def handler(event, context):
    return {"where": "sub/mod"}
