# gitmesh. `make test` and `make demo` install what they lack (apt-get when
# root) or stop with the exact command to run.
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
# urfave_cli_no_docs leaves out urfave/cli's man and markdown generators and
# their markdown library, whose init every `gitmesh serve` would pay for.
TAGS := urfave_cli_no_docs
# gitmesh --version names the tag (or commit) and the full commit it was
# built from; outside a git checkout they are left out and Go's own build
# information is used.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X gitmesh/cli.stampVersion=$(VERSION) -X gitmesh/cli.stampCommit=$(COMMIT)

.PHONY: all build ldflags deb setup test race vet bench fuzz demo demo-stop clean

all: build

# Without cgo: a static binary, which `gitmesh serve` (one process per SSH
# connection) starts about a millisecond of CPU sooner than a dynamically
# linked one (README "Speed").
build:
	CGO_ENABLED=0 $(GO) build -tags $(TAGS) -ldflags "$(LDFLAGS)" -o gitmesh .

# The linker flags build uses (the version test builds with exactly these).
ldflags:
	@echo '$(LDFLAGS)'

# dist/gitmesh_VERSION_ARCH.deb (packaging/deb.sh says how, and why dpkg-deb).
deb:
	@packaging/deb.sh build

setup:
	@scripts/setup.sh

vet:
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || { echo "gofmt: files above need formatting" >&2; exit 1; }
	$(GO) vet -tags $(TAGS) ./...

test: setup vet
	$(GO) test -tags $(TAGS) -race -count=1 -timeout 40m ./...

# As a dedicated account when root (scripts/bench.sh says why).
BENCH ?= .
bench: setup
	scripts/bench.sh -tags $(TAGS) -run '^$$' -bench '$(BENCH)' -benchtime 200x -count 1 -timeout 90m

FUZZTIME ?= 30s
fuzz: setup
	$(GO) test -tags $(TAGS) -run '^$$' -fuzz FuzzParseCommand -fuzztime $(FUZZTIME) ./gitexec/
	$(GO) test -tags $(TAGS) -run '^$$' -fuzz FuzzValidateName -fuzztime $(FUZZTIME) ./gitexec/
	$(GO) test -tags $(TAGS) -run '^$$' -fuzz FuzzParseClusterCommand -fuzztime $(FUZZTIME) ./gitexec/
	$(GO) test -tags $(TAGS) -run '^$$' -fuzz FuzzReadDigestsRequest -fuzztime $(FUZZTIME) ./gitexec/
	$(GO) test -tags $(TAGS) -run '^$$' -fuzz FuzzParseKey -fuzztime $(FUZZTIME) ./access/
	$(GO) test -tags $(TAGS) -run '^$$' -fuzz FuzzReadPush -fuzztime $(FUZZTIME) ./hook/
	$(GO) test -tags $(TAGS) -run '^$$' -fuzz FuzzMeterLine -fuzztime $(FUZZTIME) ./gitexec/
	$(GO) test -tags $(TAGS) -run '^$$' -fuzz FuzzParseArchiveRequest -fuzztime $(FUZZTIME) ./gitexec/
	$(GO) test -tags $(TAGS) -run '^$$' -fuzz FuzzEscape -fuzztime $(FUZZTIME) ./termsafe/
	$(GO) test -tags $(TAGS) -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./httpgit/
	$(GO) test -tags $(TAGS) -run '^$$' -fuzz FuzzBasic -fuzztime $(FUZZTIME) ./httpgit/
	$(GO) test -tags $(TAGS) -run '^$$' -fuzz FuzzSideband -fuzztime $(FUZZTIME) ./httpgit/

demo: setup build
	@DEVICES="$(DEVICES)" scripts/demo.sh start

demo-stop:
	@scripts/demo.sh stop

clean:
	rm -f gitmesh
	rm -rf dist
