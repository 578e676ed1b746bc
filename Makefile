# OCPP Witness — the two commands a fresh machine needs: `make demo` and `make test`.
SWIFT ?= swift
BIN := .build/debug/ocpp-witness
PREFIX ?= /usr/local
## The build `make install` installs: release (default) or debug.
CONFIG ?= release

.PHONY: setup build demo test clean docs bench bench-validation bench-recorder bench-analysis bench-reconnect bench-soak install install-files uninstall

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

## Installs the binary, the OCA schemas and the sample policies (share/ocpp-witness) and shell completions
## under PREFIX, so that the binary works from any folder.
install: setup
	$(SWIFT) build -c $(CONFIG) --product ocpp-witness
	$(MAKE) install-files PREFIX="$(PREFIX)" CONFIG=$(CONFIG)

## The copying part of `install`, for a binary already built.
install-files:
	install -d "$(PREFIX)/bin" "$(PREFIX)/share/ocpp-witness" "$(PREFIX)/share/bash-completion/completions" \
		"$(PREFIX)/share/zsh/site-functions" "$(PREFIX)/share/fish/vendor_completions.d"
	install -m 755 .build/$(CONFIG)/ocpp-witness "$(PREFIX)/bin/ocpp-witness"
	rm -rf "$(PREFIX)/share/ocpp-witness/schemas" "$(PREFIX)/share/ocpp-witness/policies"
	cp -R schemas policies "$(PREFIX)/share/ocpp-witness/"
	"$(PREFIX)/bin/ocpp-witness" --generate-completion-script bash > "$(PREFIX)/share/bash-completion/completions/ocpp-witness"
	"$(PREFIX)/bin/ocpp-witness" --generate-completion-script zsh > "$(PREFIX)/share/zsh/site-functions/_ocpp-witness"
	"$(PREFIX)/bin/ocpp-witness" --generate-completion-script fish > "$(PREFIX)/share/fish/vendor_completions.d/ocpp-witness.fish"

uninstall:
	rm -f "$(PREFIX)/bin/ocpp-witness" "$(PREFIX)/share/bash-completion/completions/ocpp-witness" \
		"$(PREFIX)/share/zsh/site-functions/_ocpp-witness" "$(PREFIX)/share/fish/vendor_completions.d/ocpp-witness.fish"
	rm -rf "$(PREFIX)/share/ocpp-witness"

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

## The analyzer over a made-up day of 10,000 chargers with two connectors each: time and memory, in a release build.
bench-analysis: setup
	$(SWIFT) build -c release --product ocpp-witness
	.build/release/ocpp-witness benchmark analysis $(BENCH_ARGS)

## Reconnect storm in a release build: 10,000 chargers over ws:// and 2,000 over wss:// reconnect at once
## after the backend comes back, through nginx and OCPP Witness. Installs nginx if missing.
bench-reconnect: setup
	@bash scripts/setup.sh --bench
	$(SWIFT) build -c release --product ocpp-witness
	.build/release/ocpp-witness benchmark reconnect $(BENCH_ARGS)

## Soak with hostile peers in a release build: 32 good chargers for a clean minute, then ten minutes beside
## continuation streamers, close stallers, delay-fault senders and half-finished upgrades; the proxy's memory
## and descriptors must level off and the good chargers' p99 stay within 2x. E.g. BENCH_ARGS="--seconds 1800".
bench-soak: setup
	$(SWIFT) build -c release --product ocpp-witness
	.build/release/ocpp-witness benchmark soak $(BENCH_ARGS)

## Regenerates what docs/ derive from the code: the module graph of docs/architecture.md (from Package.swift).
docs:
	$(SWIFT) package --scratch-path .build/docs-scratch dump-package | python3 scripts/module-graph.py --write docs/architecture.md
