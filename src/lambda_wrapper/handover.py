"""The variables the wrapper script (``wrapper/lambda-wrapper``) sets for the Python side.

They are not user settings (``settings.py`` declares those): the script writes them,
the supervisor, the start-up hook and ``doctor`` read them. A test holds this list and
the script to each other. The start-up hook (``supervisor/pathhook/sitecustomize.py``)
runs before this package is importable, so it spells its two names itself; the same
test checks them against these.
"""

USER_HANDLER = "LAMBDA_WRAPPER_HANDLER"
ROOT = "LAMBDA_WRAPPER_ROOT"
STARTED_AT = "LAMBDA_WRAPPER_T0"
EXEC_AT = "LAMBDA_WRAPPER_T1"
SAVED_PYTHONPATH = "LAMBDA_WRAPPER_SAVED_PYTHONPATH"
PYTHON_DIR = "LAMBDA_WRAPPER_PYTHON_DIR"
TWEAKS_APPLIED = "LAMBDA_WRAPPER_TWEAKS_APPLIED"

ALL = (USER_HANDLER, ROOT, STARTED_AT, EXEC_AT, SAVED_PYTHONPATH, PYTHON_DIR, TWEAKS_APPLIED)
