"""One-shot start-up hook: make the layer's ``python/`` importable without PYTHONPATH.

The wrapper reaches this file through ``PYTHONPATH`` only when our package would not
be on the runtime's default ``sys.path`` (the layer is not at ``/opt``, or the user set
``PYTHONPATH``). The runtime's ``bootstrap.py`` skips the ``/opt/python`` layer paths
whenever ``PYTHONPATH`` is set, so this hook puts ``PYTHONPATH`` back exactly as the
user had it before ``bootstrap.py`` reads it, adds our directory at the *end* of
``sys.path`` (so it shadows nothing of the function's), and then runs whatever
``sitecustomize`` the interpreter would have run without us.
"""

import os
import sys


def _restore_environment() -> None:
    hook_dir = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != hook_dir]

    saved = os.environ.pop("LAMBDA_WRAPPER_SAVED_PYTHONPATH", "unset:")
    state, _, value = saved.partition(":")
    if state == "set":
        os.environ["PYTHONPATH"] = value
    else:
        os.environ.pop("PYTHONPATH", None)

    python_dir = os.environ.pop("LAMBDA_WRAPPER_PYTHON_DIR", "")
    if python_dir and python_dir not in sys.path:
        sys.path.append(python_dir)


def _chain_next_sitecustomize() -> None:
    # We shadowed the interpreter's own sitecustomize, if it has one: run it now. Unless
    # it takes our place, this module must be back in sys.modules when we return: the
    # import system that is loading us pops our entry from it afterwards.
    ours = sys.modules.pop("sitecustomize")
    try:
        import sitecustomize  # noqa: F401
    except ImportError:
        sys.modules["sitecustomize"] = ours
    except Exception as exc:  # the same leniency site.py shows a broken sitecustomize
        sys.modules["sitecustomize"] = ours
        print(f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{type(exc).__name__}: {exc}",
              file=sys.stderr)


_restore_environment()
_chain_next_sitecustomize()
