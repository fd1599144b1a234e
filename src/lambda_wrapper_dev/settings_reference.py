"""The README's environment-variable table, generated from the runtime's ``SETTINGS``
(``scripts/update_readme.py`` writes it between the README's markers)."""

from __future__ import annotations

from lambda_wrapper.variables import SETTINGS, _show


def render_reference() -> str:
    rows = ["| variable | default | accepted | what it does |", "| --- | --- | --- | --- |"]
    for setting in SETTINGS:
        shown = "(derived)" if setting.default is None else f"`{_show(setting.default)}`"
        accepted = setting.accepted.replace("|", "\\|")
        description = setting.description.replace("|", "\\|")
        rows.append(f"| `{setting.name}` | {shown} | {accepted} | {description} |")
    return "\n".join(rows) + "\n"
