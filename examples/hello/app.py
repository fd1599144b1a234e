"""A sample function: it logs, returns, and fails on demand.

Event fields it understands:
  {"fail": "exception"}  raise an exception (a function error)
  {"fail": "exit"}       call sys.exit(3) inside the handler
  {"sleep": 1.5}         sleep before answering (to try timeouts)
  {"lines": 1000}        print that many log lines
"""

import logging
import sys
import time

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)


class DemoFailure(Exception):
    pass


def handler(event, context):
    event = event if isinstance(event, dict) else {}
    logger.info("hello from %s", context.function_name)
    print(f"request {context.aws_request_id} remaining {context.get_remaining_time_in_millis()} ms")
    for index in range(int(event.get("lines", 0))):
        print(f"line {index}")
    if event.get("sleep"):
        time.sleep(float(event["sleep"]))
    failure = event.get("fail")
    if failure == "exception":
        raise DemoFailure("failing on demand")
    if failure == "exit":
        sys.exit(3)
    return {"message": "hello", "echo": event.get("echo")}
