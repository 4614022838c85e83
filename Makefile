# mtad: build and test entry points. See docs/reliability.md for what the
# reliability suite proves and the figures of its runs.

GO       ?= go
FUZZTIME ?= 30s
SOAKTIME ?= 60m

.PHONY: test soak fuzz-soak

# The whole suite, as CI runs it (the reliability suite in its small size).
test:
	$(GO) test ./...

# The reliability suite in its large size: 20 SIGKILL cycles, the slow remote
# faults (greeting timeout, final-dot timeout), larger corpora.
soak:
	$(GO) test -tags soak -timeout $(SOAKTIME) -v ./reliability/

# Every fuzz target of the module, each for FUZZTIME (make fuzz-soak FUZZTIME=5m).
# Targets are discovered with go test -list, so new ones join without an edit here.
# New crashers land in the package's testdata/fuzz/ and fail the run.
fuzz-soak:
	@set -e; \
	for pkg in $$($(GO) list ./...); do \
		for fz in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$fz ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$fz$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done
