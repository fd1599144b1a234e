"""What each part of lambda-wrapper's default cold start adds to Init, and the floor of
an internal extension, and write the section.

Cold starts of five variants alternate, round after round, on AWS's RIE and on the
sandbox:

- bare: the function, no wrapper;
- the wrapper script alone (``LAMBDA_WRAPPER_DISABLED=true``: it execs the runtime at once);
- the supervisor without the extension (``LAMBDA_WRAPPER_EXTENSION=false``; setting a
  variable of ours also loads the variables' declarations);
- the floor: the least an exec wrapper with an internal extension can do
  (``bench/floor``: register, subscribe, listen, ``/event/next``, nothing else);
- the floor that also imports the modules of our default path and uses none of them;
- lambda-wrapper with defaults.

Each figure is the median, over the rounds, of a variant's Init less the bare Init of
the same round. The budget for defaults is 10 % of a bare Init; the floor shows how
much of that the platform's protocol alone takes.

    .venv/bin/python -m bench.measure_init_parts --update-doc
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from pathlib import Path
from typing import Any

from bench.doc_section import DocSection
from bench.layers import bench_cache, compile_bytecode
from bench.measure_init_phases import one_cold_start
from bench.measure_tweaks import rounded, setting
from bench.platforms import EnvironmentSpec

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
HEADING = "## Init, part by part"
FLOOR_SOURCE = REPO / "bench" / "floor"
PLATFORMS = ("rie", "sandbox")
PLATFORM_NAMES = {"sandbox": "sandbox", "rie": "RIE"}
BARE = "bare"
# What the entry module's import loads with defaults (the rest comes in through these:
# the package, aws, settings, telemetry, instruments); tests/test_cold_path.py holds the list.
DEFAULT_PATH_IMPORTS = ("lambda_wrapper.supervisor", "lambda_wrapper.export", "lambda_wrapper.extension",
                        "lambda_wrapper.export.emf")
# name, label, layer ("own" or "floor"), environment added to the default variant's
PARTS: tuple[tuple[str, str, str, dict[str, str]], ...] = (
    ("script", "the wrapper script alone (`LAMBDA_WRAPPER_DISABLED=true`)", "own",
     {"LAMBDA_WRAPPER_DISABLED": "true"}),
    ("supervisor", "the supervisor, no extension (`LAMBDA_WRAPPER_EXTENSION=false`)", "own",
     {"LAMBDA_WRAPPER_EXTENSION": "false"}),
    ("floor", "the floor: a minimal internal extension (`bench/floor`)", "floor", {}),
    ("floorImports", "the floor, also importing our default path's modules", "floor",
     {"FLOOR_IMPORTS": ",".join(DEFAULT_PATH_IMPORTS)}),
    ("defaults", "lambda-wrapper, defaults", "own", {}),
)


def floor_layer(own_layer: Path) -> Path:
    """``bench/floor`` as a layer tree, byte-compiled like every bench layer, with our
    package from ``own_layer`` beside it (its shipped bytecode) for ``FLOOR_IMPORTS``."""
    target = bench_cache() / "layers" / "floor"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(FLOOR_SOURCE, target)
    compile_bytecode(target / "python")
    shutil.copytree(own_layer / "python" / "lambda_wrapper", target / "python" / "lambda_wrapper")
    return target


def cold_starts(platform: str, rounds: int) -> dict[str, list[float]]:
    from bench.measure_warm_cpu import variant_specs
    from bench.variants import select

    specs = variant_specs(select("wrapper-default"), None)
    wrapped = specs["wrapper-default"]
    assert wrapped.layer_dir is not None
    layers = {"own": wrapped.layer_dir, "floor": floor_layer(wrapped.layer_dir)}
    variants = {BARE: specs[BARE]}
    for name, _, layer, env in PARTS:
        variants[name] = EnvironmentSpec(
            wrapped.task_root, wrapped.handler, layers[layer], {**wrapped.env, **env},
            memory_mb=wrapped.memory_mb, python_version=wrapped.python_version,
        )
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for round_number in range(rounds):
        order = list(variants.items())
        if round_number % 2:  # neither end of a round is always the same variant's
            order.reverse()
        for name, spec in order:
            samples[name].append(one_cold_start(platform, spec, name)[0])
    return samples


def summarise(samples: dict[str, list[float]]) -> dict[str, Any]:
    bare = samples[BARE]
    return {
        "rounds": len(bare),
        "bareInitMs": statistics.median(bare),
        "addedMs": {
            name: statistics.median(value - base for value, base in zip(samples[name], bare, strict=True))
            for name, _, _, _ in PARTS
        },
    }


def measure(rounds: int) -> dict[str, Any]:
    return rounded({
        "setting": setting(),
        "platforms": {platform: summarise(cold_starts(platform, rounds)) for platform in PLATFORMS},
    })


def render(data: dict[str, Any]) -> str:
    where, platforms = data["setting"], data["platforms"]
    names = [PLATFORM_NAMES[platform] for platform in platforms]
    rounds = ", ".join(f"{platforms[p]['rounds']} on the {PLATFORM_NAMES[p]}" for p in platforms)
    lines = [
        f"Measured {where['date']} on commit `{where['commit']}`, {where['machine']}, "
        f"Python {where['python']}, `/bin/sh` is {where['shell']}, by `bench/measure_init_parts.py`: "
        f"rounds of cold starts ({rounds}), each round one start of every variant; for each variant the "
        "median over the rounds of its Init less the bare Init of the same round, in ms, and that as a "
        "share of the median bare Init.",
        "",
        "| variant | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(names),
    ]
    for name, label, _, _ in PARTS:
        cells = []
        for platform in platforms:
            added, bare = platforms[platform]["addedMs"][name], platforms[platform]["bareInitMs"]
            cells.append(f"{added:+.2f} ({added / bare:+.1%})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| bare Init | " + " | ".join(f"{platforms[p]['bareInitMs']:.2f}" for p in platforms) + " |")
    lines += [
        "",
        "The floor is the least any exec wrapper with an internal extension pays: the script's exec, "
        "then register, subscribe, a listener and the first `/event/next`, with no feature at all. The "
        "row after it only adds loading the modules our default Init loads, none of them used. Where those "
        "two rows together reach the budget for defaults, no reordering of our own Init work (settings, "
        "exporters, spool, in-flight marker, threads) can meet it; only loading less code at Init can, and "
        "code loaded later is loaded inside an invocation, at 128 MB on 7 % of a vCPU.",
        "",
    ]
    for platform, figures in platforms.items():
        added, bare = figures["addedMs"], figures["bareInitMs"]
        lines.append(
            f"- {PLATFORM_NAMES[platform]}: the budget for defaults, 10 % of a bare Init, is "
            f"{bare / 10:.2f} ms. The floor takes {added['floor']:.2f} of it; importing our modules "
            f"adds {added['floorImports'] - added['floor']:.2f} to the floor; defaults add "
            f"{added['defaults']:.2f}, {added['defaults'] - added['floor']:.2f} more than the floor.")
    return "\n".join(lines) + "\n"


SECTION = DocSection("init-parts", HEADING, render)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=25, help="rounds of cold starts per platform")
    parser.add_argument("--update-doc", action="store_true", help=f"write the section into {DOC}")
    args = parser.parse_args()
    SECTION.publish(DOC, measure(args.rounds), args.update_doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
