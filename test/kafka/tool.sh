#!/usr/bin/env bash
# Runs one of Kafka's own CLI tools on the cached classpath, for poking at the
# test broker by hand (no Kafka distribution needed). Examples:
#   test/kafka/tool.sh org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:19092 --list
#   test/kafka/tool.sh org.apache.kafka.tools.ConsoleProducer --bootstrap-server 127.0.0.1:19092 --topic t
#   test/kafka/tool.sh org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server 127.0.0.1:19092 --topic t --from-beginning
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

[ $# -ge 1 ] || die "usage: $0 JAVA_CLASS [ARGS...]"
kafka_check_java
kafka_ensure_libs >/dev/null
kafka_run_class "$@"
