#!/usr/bin/env bash
# Builds kbridge, makes sure the test broker runs, and runs the publish
# benchmark against it; the markdown table goes to stdout, progress to
# stderr. The broker is left running (stop it with test/kafka/stop.sh).
#
#   bench/publish.sh [flags of bench/publish]
#   bench/publish.sh -duration 8s -rounds 3
#   bench/publish.sh -kbridge-flag=--max-record-bytes=934464   # see bench/README.md
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh bin/kbridge
if [[ -z "${KAFKA_BROKERS:-}" ]]; then
  export "$(test/kafka/start.sh)"
fi
go run ./bench/publish -kbridge bin/kbridge "$@"
