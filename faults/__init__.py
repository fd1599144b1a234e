"""The fault suite: every scenario runs a function through the wrapper in the sandbox.

``python -m faults.run`` runs the full form and regenerates ``docs/reliability.md``;
``--short`` is the form ``make test`` runs through ``tests/test_faults.py``. Figures
are measured on every run, never written by hand.
"""
