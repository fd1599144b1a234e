"""The benchmark chart: one bar per measured variant, platform and measure, at its ratio."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from bench.chart import MEASURES, _scale, render_svg

SVG = "{http://www.w3.org/2000/svg}"


def results(ratios: dict[str, dict[str, float]]) -> dict[str, Any]:
    variants = [{"name": name, "title": f"title of {name}", "versions": {}} for name in ratios]
    summaries = {
        name: {"trials": 3, "failed": 0, "ratio": {key: ratio for key, _ in MEASURES}}
        for name, ratio in ((name, values["ratio"]) for name, values in ratios.items())
    }
    variants[1]["versions"] = {"lambda-wrapper": "0.1.0 (abc1234)"}
    return {"date": "2026-12-04T00:00:00Z", "config": {"trials": 3}, "variants": variants,
            "results": {"sandbox": summaries, "rie": {}}}


def test_every_measured_bar_is_drawn_at_its_ratio() -> None:
    svg = render_svg(results({"bare": {"ratio": 1.0}, "wrapper-default": {"ratio": 1.08},
                              "otel": {"ratio": 9.3}}))
    root = ET.fromstring(svg)
    labels = [text.text for text in root.iter(f"{SVG}text")]
    assert "abc1234" in (labels[0] or "")
    assert labels.count("1.08x") == len(MEASURES) and labels.count("9.30x") == len(MEASURES)
    bars = [rect for rect in root.iter(f"{SVG}rect") if rect.get("height") == "14"]
    assert len(bars) == 3 * len(MEASURES)  # the rie has no results: no bars, no group
    widths = sorted({round(float(bar.get("width", 0)), 1) for bar in bars})
    assert widths == sorted({round(_scale(ratio), 1) for ratio in (1.0, 1.08, 9.3)})
    assert "rie" not in labels


def test_a_variant_with_every_trial_failed_is_not_drawn() -> None:
    data = results({"bare": {"ratio": 1.0}, "wrapper-default": {"ratio": 1.2}})
    data["results"]["sandbox"]["wrapper-default"]["failed"] = 3
    labels = [text.text for text in ET.fromstring(render_svg(data)).iter(f"{SVG}text")]
    assert "1.20x" not in labels and labels.count("not measured") == len(MEASURES)
