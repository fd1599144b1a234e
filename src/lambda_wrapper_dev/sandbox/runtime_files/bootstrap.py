"""Stand-in for the managed runtime's /var/runtime/bootstrap.py (contract 5.3).

It sets up ``sys.path`` the way the Python 3.10+ managed runtimes do, then hands over
to awslambdaric. When the sandbox cannot mount the layer at /opt (no root), it passes
the layer's real location in ``_LAMBDA_SANDBOX_OPT_DIR``; the variable is removed
before any function code runs.
"""

import os
import site
import sys

OPT_DIR = os.environ.pop("_LAMBDA_SANDBOX_OPT_DIR", "/opt")


def set_default_sys_path() -> None:
    if "PYTHONPATH" in os.environ:
        # The real bootstrap leaves sys.path alone when PYTHONPATH is set, which is
        # why exporting PYTHONPATH from a wrapper hides the function's layers.
        return
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    opt_site = os.path.join(OPT_DIR, "python", "lib", version, "site-packages")
    opt_python = os.path.join(OPT_DIR, "python")
    prefix = [task_root, opt_site, opt_python]
    if sys.version_info >= (3, 11):
        # 3.11+: the runtime's own site-packages win over /var/runtime.
        prefix += [p for p in site.getsitepackages() if p not in prefix]
    for index, entry in enumerate(prefix):
        sys.path.insert(index, entry)
    for directory in (task_root, opt_site, opt_python):
        site.addsitedir(directory)
    os.environ["PYTHONPATH"] = os.environ.get("LAMBDA_RUNTIME_DIR", os.path.dirname(__file__))


def main() -> None:
    set_default_sys_path()
    from awslambdaric import __main__ as ric

    ric.main([os.environ.get("LAMBDA_TASK_ROOT", "/var/task"), os.environ["_HANDLER"]])


if __name__ == "__main__":
    main()
