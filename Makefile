# ctiport: the two commands of the quick start are `make run` and `make test`.
CARGO   ?= cargo
PYTHON3 ?= python3
VENV    := .venv
PYTHON  := $(VENV)/bin/python
RELEASE := target/release/ctiport
DEBUG   := target/debug/ctiport

.PHONY: run test test-rust test-e2e oracles lint bench clean

## run: export the bundled sample dump to out/ and print the run summary (no credentials needed)
run:
	$(CARGO) build --release --locked -p ctiport
	@mkdir -p out
	@# The samples contain deliberately malformed records, so exit code 3 (partial) is expected.
	$(RELEASE) export --from dir:samples/mdti --to stix:out/bundle.json --to misp-feed:out/misp-feed/ --to csv:out/indicators.csv \
		--summary out/summary.json --no-progress \
		--log-level warn; code=$$?; if [ $$code -ne 0 ] && [ $$code -ne 3 ]; then exit $$code; fi
	@cat out/summary.json
	@echo
	@echo "Wrote out/bundle.json, out/misp-feed/ and out/indicators.csv (exit code 3 = partial: the samples include malformed records on purpose)."

## test: Rust unit and property tests, then end-to-end tests against the pinned OASIS oracles
test: test-rust test-e2e

test-rust:
	$(CARGO) test --workspace --locked

test-e2e: oracles
	$(CARGO) build --locked -p ctiport -p ctiport-sim
	CTIPORT_BIN=$(CURDIR)/$(DEBUG) $(PYTHON) -m pytest tests/e2e -q -p no:cacheprovider

## oracles: the Python virtualenv with the pinned stix2, stix2-validator, stix2-patterns, pytest
oracles: $(VENV)/.installed

$(VENV)/.installed: tests/oracles/requirements.txt
	$(PYTHON3) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/oracles/requirements.txt
	@touch $@

## bench: rate-limit efficiency against the sim, export throughput beside a Python baseline → BENCHMARKS.md
bench: oracles
	$(CARGO) build --release --locked -p ctiport -p ctiport-sim
	$(PYTHON) bench/run_bench.py

## lint: formatting and clippy with warnings as errors (.ci/run runs it before the tests)
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

clean:
	rm -rf out target $(VENV)
