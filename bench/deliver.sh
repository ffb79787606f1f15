#!/usr/bin/env bash
# The delivery benchmark (bench/deliver) through bench/run.sh: builds
# kbridge, starts the test broker unless KAFKA_BROKERS is set, prints the
# table.
#
#   bench/deliver.sh -records 100000 -rounds 3
#   bench/deliver.sh -scenario ordering        # scenario 5: ordering key against partition
#   bench/deliver.sh -scenario batch           # scenarios 4, 6, 7: plain client, kbridge single and batched
#   bench/deliver.sh -scenario lagging         # one partition of four with a backlog
#   bench/deliver.sh -scenario idle            # scenario 8: RSS and CPU of an idle kbridge
exec "$(dirname "$0")/run.sh" deliver "$@"
