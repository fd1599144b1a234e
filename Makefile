# Everything a fresh clone needs, behind two commands: `make demo` and `make test`.
# The virtualenv, the runtime images and the RIE binary are built on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
FUZZER := $(VENV)/.fuzzer

.PHONY: demo test lint typecheck unit rie faults bench bench-check layer docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# atheris where a wheel exists for this interpreter and machine; without it the fault
# suite fuzzes the telemetry decoder with hypothesis alone and says so in its report.
$(FUZZER): $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check --only-binary=:all: atheris \
		|| echo "atheris does not install here: the decoder is fuzzed with hypothesis only"
	touch $(FUZZER)

# The official Runtime Interface Emulator, from the pinned aws-sam-cli wheel.
rie: $(STAMP)
	$(BIN)/python -c "from lambda_wrapper_dev.sandbox.rie import ensure_rie; print(ensure_rie())"

demo: $(STAMP)
	$(BIN)/lambda-wrapper run --task-root examples/hello --handler app.handler --invokes 3 \
		--event '{"echo": "demo"}' --env LAMBDA_WRAPPER_EXPORTERS=emf,file

lint: $(STAMP)
	$(BIN)/ruff check src tests layer-build bench faults
	$(BIN)/mypy

test: $(STAMP) $(FUZZER) rie lint
	$(BIN)/python -m pytest -q

# Benchmarks, not tests (bench/README.md): every variant on the sandbox and the RIE.
bench: $(STAMP) rie
	$(BIN)/python -m bench run --update-docs

# Exits 1 when a budget is missed, after an import-time breakdown of the cold start.
bench-check: $(STAMP) rie
	$(BIN)/python -m bench check

# The fault suite, full form; regenerates docs/reliability.md (`make test` runs the short form).
faults: $(STAMP) $(FUZZER) rie
	$(BIN)/python -m faults.run --out docs/reliability.md

layer: $(STAMP)
	$(BIN)/lambda-wrapper layer build --arch all --out dist

docs: $(STAMP)
	$(BIN)/python scripts/update_readme.py

clean:
	rm -rf $(VENV) .cache dist .pytest_cache .mypy_cache .ruff_cache
