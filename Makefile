# fly-autoscaler: make help lists the targets.
BIN      ?= bin/fly-autoscaler
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILT    ?= $(shell date -u +%Y-%m-%d)
LDFLAGS  := -s -w -X github.com/superfly/fly-autoscaler/cmd.Version=$(VERSION) -X github.com/superfly/fly-autoscaler/cmd.Commit=$(COMMIT) -X github.com/superfly/fly-autoscaler/cmd.Built=$(BUILT)
PKGS     := ./...
# The fleet table of make bench: fleet sizes, --concurrency values, latency per Fly call.
BENCH_APPS        ?= 1000,10000
BENCH_CONCURRENCY ?= 8,16,32,64
BENCH_LATENCY     ?= 20ms

.PHONY: help build test test-temporal test-deps test-short lint check-deps check-lines bench demo image fmt clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

build: ## build the binary into bin/ (version, commit and date through -ldflags)
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

test: test-deps ## run the root module's tests under the race detector, real Prometheus, Pushgateway, NATS and Kafka servers included
	go test -race -count=1 -timeout 30m $(PKGS)
	go test -count=1 -timeout 10m -run '^TestHostileInputIsCheap$$' ./cmd/
	cd scale/flyapi/genqlient && go test -count=1 ./...

# The bounded-cost test above measures its children's CPU and peak memory,
# which the race detector inflates: it runs once more without it.
#
# The Temporal server tests are a module of their own (query/temporal/
# servertest): their first build compiles a whole Temporal server, some
# 30 CPU-minutes on an empty cache, so they have a target of their own,
# which .ci/run runs after make test.
test-temporal: ## run the Temporal source's tests against a real Temporal server (a module of its own; long first build)
	cd query/temporal/servertest && go test -count=1 -timeout 30m ./...

# The real-server tests need Debian's prometheus and prometheus-pushgateway
# (promtest skips without them, which a test run must not do quietly):
# installed with apt-get when missing and this user can, else named.
TEST_PACKAGES := prometheus prometheus-pushgateway
test-deps: ## install the test servers that come as Debian packages (prometheus, prometheus-pushgateway) when missing
	@missing=""; for p in $(TEST_PACKAGES); do command -v $$p >/dev/null 2>&1 || [ -x /usr/bin/$$p ] || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo -n"; \
	if command -v apt-get >/dev/null 2>&1 && $$sudo true 2>/dev/null; then \
		echo "installing$$missing"; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing || exit 1; \
		for svc in $$missing; do ($$sudo service $$svc stop || $$sudo systemctl stop $$svc) >/dev/null 2>&1 || true; done; \
	else \
		echo "the tests need$$missing: install with  sudo apt-get install$$missing  (or set PROMTEST_PROMETHEUS / PROMTEST_PUSHGATEWAY to the binaries)"; exit 1; \
	fi

test-short: ## run the quick tests only
	go test -short $(PKGS)

lint: check-deps check-lines ## the dependency and file-length checks, gofmt, go vet, and staticcheck when installed
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	go vet $(PKGS)
	@if command -v staticcheck >/dev/null 2>&1; then staticcheck $(PKGS); else echo "staticcheck not installed: skipped"; fi

# The binary holds two fakes, both for the demo: scale/flytest (Fly's APIs)
# and query/promfake (the demo's metrics endpoint, Prometheus's instant
# queries). They import no testing package; promfake knows nothing of
# fly-autoscaler. The test servers (promtest, natstest, kafkatest and the
# servers they embed) must not reach the binary.
check-deps: ## enforce the arrows main -> cmd -> {scale, query}, scale/flyapi -> scale; scale's domain knows no HTTP, flaps, environment; the binary links no testing, testify or gomock
	@M=github.com/superfly/fly-autoscaler; fail=0; \
	deps() { go list -deps $$1 | grep -x -E "$$2" | grep -v -x "$$M/$${1#./}"; }; \
	imps() { go list -f '{{join .Imports "\n"}}' $$1 | grep -x -E "$$2"; }; \
	check() { if out=$$($$1 $$2 "$$3"); then echo "$$2 must not import: $$(echo $$out)  ($$4)"; fail=1; fi; }; \
	check imps . "$$M/(scale|query).*" "main only calls cmd"; \
	check deps ./scale "$$M/(cmd|query|scale/flyapi|scale/flytest)(/.*)?" "the domain is below cmd and above the Fly API"; \
	check imps ./scale "net/http|os|github.com/superfly/fly-go/flaps" "scale's domain knows no HTTP, environment or flaps"; \
	check deps ./scale/flyapi "$$M/(cmd|query|scale/flytest)(/.*)?" "flyapi implements scale's interfaces, nothing more"; \
	check deps ./query "$$M/(cmd|scale)(/.*)?" "query knows nothing of Fly machines"; \
	check deps ./scale/flytest "$$M/(cmd|query)(/.*)?" "flytest is a fake of Fly's APIs"; \
	check imps ./scale/flytest "testing|$$M/scale" "demo ships flytest"; \
	check deps ./query/promfake "testing|$$M/.*" "demo ships promfake, a fake of Prometheus's API"; \
	for p in $$(go list ./... | grep -v -x "$$M/scale/flyapi"); do \
		check imps $$p "github.com/superfly/fly-go/flaps" "only scale/flyapi knows flaps"; \
	done; \
	if go list -deps . | grep -E 'nats-server|pkg/kfake|$$M/query/(promtest|natstest|kafkatest)$$'; then \
		echo "test servers must not reach the binary"; fail=1; fi; \
	if out=$$(go list -deps . | grep -x -E 'testing|github.com/stretchr/testify(/.*)?|(github.com/golang|go.uber.org)/mock(/.*)?'); then \
		echo "the binary must not link $$(echo $$out)  (go list -deps -f '{{.ImportPath}}: {{.Imports}}' . names the importer)"; fail=1; fi; \
	[ $$fail = 0 ] && echo "dependency arrows ok"

# No production Go file (not a _test.go file, not generated, not in a
# module of its own) is over MAX_LINES lines, but for those of LONG_FILES,
# the ones over it when the check came, still to split. The list only
# shrinks: an entry no longer over the limit, or gone, fails the check
# until it is removed from the list.
MAX_LINES  := 500
LONG_FILES :=
check-lines: ## no production .go file over 500 lines, but those LONG_FILES lists (printed), still to split
	@fail=0; nested=$$(git ls-files '*/go.mod' | sed 's#go.mod$$##'); \
	for f in $$(git ls-files '*.go' | grep -v '_test\.go$$'); do \
		[ -f $$f ] || continue; \
		for d in $$nested; do case $$f in $$d*) continue 2;; esac; done; \
		grep -q '^// Code generated .* DO NOT EDIT\.$$' $$f && continue; \
		n=$$(wc -l < $$f); listed=0; \
		case " $(strip $(LONG_FILES)) " in *" $$f "*) listed=1;; esac; \
		if [ $$n -gt $(MAX_LINES) ] && [ $$listed = 0 ]; then echo "$$f: $$n lines, over $(MAX_LINES): split it by concern"; fail=1; \
		elif [ $$n -gt $(MAX_LINES) ]; then echo "$$f: $$n lines, over $(MAX_LINES) (in LONG_FILES, still to split)"; \
		elif [ $$listed = 1 ]; then echo "$$f: $$n lines: remove it from LONG_FILES in the Makefile"; fail=1; fi; \
	done; \
	for f in $(LONG_FILES); do [ -f $$f ] || { echo "$$f: gone: remove it from LONG_FILES in the Makefile"; fail=1; }; done; \
	[ $$fail = 0 ] && echo "file lengths ok: none over $(MAX_LINES) lines but those of LONG_FILES"

demo: ## see it work: a fake Fly org and metrics on loopback, then a dry run, a run and a converged run
	go run . demo

image: ## build the container image (the Dockerfile runs make build with this VERSION and COMMIT)
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t fly-autoscaler:$(VERSION) .

bench: ## benchmarks: planner and whole run (CPU per app), then the fleet table against flytest with latency (BENCH_APPS=1000 for a short one)
	go test -run '^$$' -bench . -benchmem $(PKGS)
	go test -count=1 -timeout 60m -run '^TestFleetTable$$' -v ./bench -fleet \
		-apps $(BENCH_APPS) -concurrency $(BENCH_CONCURRENCY) -latency $(BENCH_LATENCY)

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

clean: ## remove build output
	rm -rf bin
