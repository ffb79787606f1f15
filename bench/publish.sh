#!/usr/bin/env bash
# The publish benchmark (bench/publish) through bench/run.sh: builds kbridge,
# starts the test broker unless KAFKA_BROKERS is set, prints the table.
#
#   bench/publish.sh -duration 8s -rounds 3
#   bench/publish.sh -kbridge-flag=--max-record-bytes=934464   # see bench/README.md
exec "$(dirname "$0")/run.sh" publish "$@"
