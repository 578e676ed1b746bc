# OCPP Witness — the two commands a fresh machine needs: `make demo` and `make test`.
SWIFT ?= swift
BIN := .build/debug/ocpp-witness

.PHONY: setup build demo test clean bench bench-validation bench-recorder

## Installs what is missing (libpcap-dev, the pinned OCA schemas, Python interop peers). Idempotent.
setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build

## Builds and runs the embedded pilot: CSMS simulator, proxy and simulated chargers; leaves a capture.
demo: build
	$(BIN) demo --capture captures/demo

## Runs the whole test suite.
test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

clean:
	rm -rf .build

## Forwarding benchmark in a release build: direct vs nginx vs OCPP Witness, latency at half load, capture
## check, 10,000-charger scale run. Installs nginx if missing. Pass options with BENCH_ARGS="--seconds 20".
bench: setup
	@bash scripts/setup.sh --bench
	$(SWIFT) build -c release --product ocpp-witness
	.build/release/ocpp-witness benchmark forwarding $(BENCH_ARGS)

## Validation throughput on one core against Python jsonschema, in a release build.
bench-validation: setup
	$(SWIFT) build -c release --product ocpp-witness
	.build/release/ocpp-witness benchmark validation --peer-python .tools/venv/bin/python

## CPU per message of the recorder's thread alone (recording, and recording with live analysis), in a release build.
bench-recorder: setup
	$(SWIFT) build -c release --product ocpp-witness
	.build/release/ocpp-witness benchmark recorder $(BENCH_ARGS)
