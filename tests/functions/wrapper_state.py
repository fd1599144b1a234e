"""Reports whether the wrapper's entry module is what Lambda called."""

import sys


def handler(event, context):
    return {"entry_loaded": "lambda_wrapper.supervisor.entry" in sys.modules}
