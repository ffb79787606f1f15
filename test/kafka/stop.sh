#!/usr/bin/env bash
# Stops the test broker that start.sh started for this KAFKA_PORT and deletes
# its work dir (data, logs, config). Safe to run when nothing is running.
#
# SIGTERM first so Kafka shuts down cleanly (fast: KRaft single node), then
# SIGKILL after KAFKA_STOP_TIMEOUT seconds: a test run must never hang here.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

main() {
  kafka_lock
  local pid deadline
  if pid="$(kafka_running_pid)"; then
    log "stopping broker pid $pid (SIGTERM, up to ${KAFKA_STOP_TIMEOUT}s)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "still alive after ${KAFKA_STOP_TIMEOUT}s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      # SIGKILL is not instant; wait briefly so the port is free when we return.
      deadline=$((SECONDS + 10))
      while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
        sleep 0.1
      done
      kill -0 "$pid" 2>/dev/null && die "pid $pid survived SIGKILL"
    fi
    log "stopped"
  else
    log "no broker running for port $KAFKA_PORT"
  fi
  if [ -d "$KAFKA_WORK_DIR" ]; then
    kafka_remove_work_dir
    log "removed $KAFKA_WORK_DIR"
  fi
}

main "$@"
