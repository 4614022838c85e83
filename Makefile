# mtad: build and test entry points. See docs/reliability.md for what the
# reliability suite proves and the figures of its runs.

GO       ?= go
FUZZTIME ?= 30s
SOAKTIME ?= 60m

.PHONY: test soak soak-load fuzz-soak

# The whole suite, as CI runs it (the reliability suite in its small size).
test:
	$(GO) test ./...

# The reliability suite in its large size: 20 SIGKILL cycles, the slow remote
# faults (greeting timeout, final-dot timeout), larger corpora.
soak:
	$(GO) test -tags soak -timeout $(SOAKTIME) -v ./reliability/

# The load soak alone: 80 % of the measured capacity for 30 min with an image swap
# and a stopped channel every minute (make soak-load SOAK_DURATION=10m for a
# shorter run; SOAK_SAMPLES=FILE keeps the RSS/goroutine samples).
soak-load:
	$(GO) test -tags soak -run '^TestLoadSoak$$' -timeout $(SOAKTIME) -v ./reliability/

# Every fuzz target of the module, each for FUZZTIME (make fuzz-soak FUZZTIME=5m).
# Targets are discovered with go test -list, so new ones join without an edit here.
# Every target runs even after a failure; the failed ones are listed at the end.
# A failure counts only if it wrote a reproducer into the package's
# testdata/fuzz/TARGET/: go1.26's fuzz coordinator can end a duration-bound run with
# a bare "context deadline exceeded" and no input (golang/go#75804, fixed in
# go1.27); those are reported as flakes.
fuzz-soak:
	@failed=""; flaked=""; \
	for pkg in $$($(GO) list ./...); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
		for fz in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$fz ($(FUZZTIME))"; \
			before=$$(ls $$dir/testdata/fuzz/$$fz 2>/dev/null | wc -l); \
			if ! $(GO) test -run '^$$' -fuzz "^$$fz$$" -fuzztime $(FUZZTIME) $$pkg; then \
				after=$$(ls $$dir/testdata/fuzz/$$fz 2>/dev/null | wc -l); \
				if [ "$$after" -gt "$$before" ]; then failed="$$failed $$pkg.$$fz"; \
				else flaked="$$flaked $$pkg.$$fz"; fi; \
			fi; \
		done; \
	done; \
	if [ -n "$$flaked" ]; then echo "fuzz-soak: failed without a reproducer (golang/go#75804):$$flaked"; fi; \
	if [ -n "$$failed" ]; then echo "fuzz-soak: FAILED with a reproducer in testdata/fuzz:$$failed"; exit 1; fi
