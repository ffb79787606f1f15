#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. go vet, staticcheck and gofmt;
#   2. every package with the race detector against the in-process kfake
#      broker (includes the fault-injection tests);
#   3. a few seconds of each fuzz target (their seed corpora run in step 2),
#      then the short chaos run (test/chaos, RELIABILITY.md): kbridge
#      binaries killed, stopped and added while records flow, on kfake;
#   4. a real Apache Kafka broker (test/kafka/start.sh: Java 17 + Maven):
#      the integration suites again against it, then the interop check with
#      grpcurl, curl and kcat (test/interop/publish.sh), and delivery of
#      what kcat produced to a webhook (test/interop/deliver.sh).
#
#   scripts/test.sh            everything
#   scripts/test.sh --quick    steps 1-2 only (no Java, no kcat needed)
#
# Environment: FUZZTIME (default 5000x: iterations per target; a count, not a
# duration, because a short -fuzztime can end a healthy run with "context
# deadline exceeded").
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false
[[ "${1:-}" == "--quick" ]] && quick=true
step() { printf '\n==> %s\n' "$*"; }

step "vet, staticcheck and format"
go vet ./...
go tool -modfile=tools/go.mod staticcheck ./...
unformatted="$(gofmt -l $(git ls-files '*.go' | grep -v '^gen/'))"
if [[ -n "$unformatted" ]]; then
  echo "gofmt needed on:" >&2; echo "$unformatted" >&2; exit 1
fi

step "unit and end-to-end tests against the in-process broker (kfake)"
go test -race -count=1 ./...

$quick && exit 0

step "fuzz targets, ${FUZZTIME:-5000x} each"
fuzzlog="$(mktemp)"
while read -r file; do
  pkg="./$(dirname "${file#./}")"
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
    echo "fuzz $pkg $target"
    # Quiet on success; on failure show everything (the failing input is
    # also saved under the package's testdata/fuzz).
    if ! go test -run='^$' -fuzz="^${target}\$" -fuzztime="${FUZZTIME:-5000x}" "$pkg" >"$fuzzlog" 2>&1; then
      cat "$fuzzlog"; exit 1
    fi
  done
done < <(grep -rlE '^func Fuzz' --include='*_test.go' .)

step "chaos run, short (RELIABILITY.md): kill -9, SIGTERM and rebalances while records flow"
# Twice: one record per request, then batch delivery (max_records 20), whose
# failure paths are its own (partial replies, the partition ordering rule,
# whole-batch 422s). A short run is paced by its one-minute publishing window,
# not by the CPU, so the step takes about two minutes; choosing one mode per
# CI run instead would leave each mode untested half the time.
KBRIDGE_CHAOS=short KBRIDGE_CHAOS_BATCH=0 go test -count=1 -run TestChaos -timeout 10m ./test/chaos/
KBRIDGE_CHAOS=short KBRIDGE_CHAOS_BATCH=20 go test -count=1 -run TestChaos -timeout 10m ./test/chaos/

step "real Apache Kafka broker"
if [[ -z "${KAFKA_BROKERS:-}" ]]; then
  started_kafka=true
  export "$(test/kafka/start.sh)"
  trap 'test/kafka/stop.sh >/dev/null 2>&1 || true' EXIT
fi
echo "KAFKA_BROKERS=$KAFKA_BROKERS"
# The integration suites pick the real broker up from KAFKA_BROKERS; tests
# that need kfake's fault injection skip (they ran in step 2).
go test -race -count=1 ./app/... ./bridge/...

step "interop: grpcurl and curl publish, kcat reads back; kcat produces, the webhook receives"
if ! command -v kcat >/dev/null; then
  if [[ "${CI:-}" == "true" ]]; then echo "kcat is required in CI" >&2; exit 1; fi
  echo "SKIPPED: kcat is not installed (apt-get install kcat)" >&2
else
  scripts/build.sh bin/kbridge
  test/interop/publish.sh
  test/interop/deliver.sh
fi
if ${started_kafka:-false}; then echo "stopping the test broker"; fi
