"""What the supervisor measures about the function and about itself.

Each module is one idea, loaded only when its feature is on (see
``docs/instruments.md``). The modules on the default path (``records``, ``context``,
``coldstart``, ``overhead``, ``procfs``) import nothing beyond what awslambdaric already
loaded; structlog and psutil are imported only by ``logs`` and ``process``.
"""
