"""Writes to stdout, stderr and the logging module, then returns."""

import logging
import sys

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)


def handler(event, context):
    print("printed line")
    print("stderr line", file=sys.stderr)
    logger.info("logged %s", "info")
    logger.warning("logged warning")
    return {"logged": 4}
