#!/usr/bin/env bash
# Builds kbridge, makes sure the test broker runs, and runs one of the
# benchmarks against it; the markdown table goes to stdout, progress to
# stderr. The broker is left running (stop it with test/kafka/stop.sh).
#
#   bench/run.sh publish|deliver [flags of that benchmark]
#   bench/run.sh publish -duration 8s -rounds 3
#   bench/run.sh deliver -records 100000 -rounds 3
#   bench/run.sh deliver -scenario ordering     # scenario 5: ordering key against partition
#   bench/run.sh deliver -scenario batch        # scenarios 4, 6, 7: plain client, kbridge single, kbridge batched
#   bench/run.sh deliver -scenario lagging      # one partition of four with a backlog
#   bench/run.sh deliver -scenario idle         # scenario 8: RSS and CPU of an idle kbridge
# bench/results.sh runs all of them and writes bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  publish | deliver) ;;
  *) echo "usage: bench/run.sh publish|deliver [flags]" >&2; exit 2 ;;
esac
name="$1"; shift
scripts/build.sh bin/kbridge
if [[ -z "${KAFKA_BROKERS:-}" ]]; then
  export "$(test/kafka/start.sh)"
fi
go run "./bench/$name" -kbridge bin/kbridge "$@"
