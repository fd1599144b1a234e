"""Benchmark harness: what the wrapper costs a function, next to the bare runtime and the alternatives.

Run it with ``make bench`` (or ``python -m bench run --help``); ``make bench-check`` holds the
results to the budgets in ``budgets.py``. See ``bench/README.md``.
"""
