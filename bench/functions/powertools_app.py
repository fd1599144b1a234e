"""The same function as ``app.py``, with what a Powertools user adds: Logger and Metrics.

One structured log line and one EMF metric per invocation, both written to stdout.
"""

from app import handler as base_handler
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="bench")
metrics = Metrics(namespace="Bench", service="bench")


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event, context):
    logger.info("invocation")
    metrics.add_metric(name="Invocations", unit=MetricUnit.Count, value=1)
    return base_handler(event, context)
