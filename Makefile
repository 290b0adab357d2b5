# gitmesh. `make test` and `make demo` install what they lack (apt-get when
# root) or stop with the exact command to run.
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
# urfave_cli_no_docs leaves out urfave/cli's man and markdown generators and
# their markdown library, whose init every `gitmesh serve` would pay for.
TAGS := urfave_cli_no_docs

.PHONY: all build setup test race vet bench fuzz demo demo-stop clean

all: build

build:
	$(GO) build -tags $(TAGS) -o gitmesh .

setup:
	@scripts/setup.sh

vet:
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || { echo "gofmt: files above need formatting" >&2; exit 1; }
	$(GO) vet -tags $(TAGS) ./...

test: setup vet
	$(GO) test -tags $(TAGS) -race -count=1 -timeout 40m ./...

bench: setup
	$(GO) test -tags $(TAGS) -run '^$$' -bench . -benchtime 200x -count 1 ./bench/

FUZZTIME ?= 30s
fuzz: setup
	$(GO) test -tags $(TAGS) -run '^$$' -fuzz FuzzParseCommand -fuzztime $(FUZZTIME) ./gitexec/
	$(GO) test -tags $(TAGS) -run '^$$' -fuzz FuzzValidateName -fuzztime $(FUZZTIME) ./gitexec/
	$(GO) test -tags $(TAGS) -run '^$$' -fuzz FuzzParseKey -fuzztime $(FUZZTIME) ./access/
	$(GO) test -tags $(TAGS) -run '^$$' -fuzz FuzzReadPush -fuzztime $(FUZZTIME) ./hook/
	$(GO) test -tags $(TAGS) -run '^$$' -fuzz FuzzEscape -fuzztime $(FUZZTIME) ./synclog/

demo: setup build
	@scripts/demo.sh start

demo-stop:
	@scripts/demo.sh stop

clean:
	rm -f gitmesh
