#!/usr/bin/env bash
# The delivery benchmark (bench/deliver) through bench/run.sh: builds
# kbridge, starts the test broker unless KAFKA_BROKERS is set, prints the
# table.
#
#   bench/deliver.sh -records 100000 -rounds 3
#   bench/deliver.sh -scenario ordering        # scenario 5: ordering key against partition
exec "$(dirname "$0")/run.sh" deliver "$@"
