"""Regenerate the README's environment-variable reference from the settings table."""

from __future__ import annotations

import sys
from pathlib import Path

from lambda_wrapper_dev.settings_reference import render_reference

BEGIN = "<!-- settings-reference:begin -->"
END = "<!-- settings-reference:end -->"


def updated(readme: str) -> str:
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{render_reference()}{END}{tail}"


def main() -> int:
    path = Path(__file__).resolve().parents[1] / "README.md"
    text = path.read_text()
    if BEGIN not in text or END not in text:
        print(f"{path}: markers {BEGIN} / {END} not found", file=sys.stderr)
        return 1
    path.write_text(updated(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
