# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables below are used by the scripts that source this
# Shared settings and helpers for start.sh, stop.sh and tool.sh. Sourced, not run.
#
# Every knob is an environment variable with a default, so CI and developers
# can run several brokers side by side (different KAFKA_PORT) without editing
# anything.

KAFKA_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# 4.1.x: a current 4.x line (KRaft only, no ZooKeeper). 4.0.2 was verified
# too; 3.x is not supported (different logging stack).
KAFKA_VERSION="${KAFKA_VERSION:-4.1.2}"
KBRIDGE_KAFKA_CACHE="${KBRIDGE_KAFKA_CACHE:-${HOME:-/tmp}/.cache/kbridge-kafka}"
KAFKA_HOST=127.0.0.1 # loopback only: nothing here may listen on other addresses
KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
# Keyed by port so stop.sh finds the broker start.sh started without any
# state passed between them, and two brokers on two ports don't collide.
KAFKA_WORK_DIR="${KAFKA_WORK_DIR:-${TMPDIR:-/tmp}/kbridge-kafka-${KAFKA_PORT}}"
KAFKA_READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-90}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
# Small fixed heap: the machines have 2 cores, and tests move little data.
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
JAVA="${JAVA:-java}"

KAFKA_PID_FILE="$KAFKA_WORK_DIR/kafka.pid"
KAFKA_LOCK_DIR="$KAFKA_WORK_DIR.lock"
KAFKA_LOG_FILE="$KAFKA_WORK_DIR/broker.log"
# Written by start.sh into every work dir it creates; stop.sh and start.sh only
# ever rm -rf a directory that carries it, so a mistyped KAFKA_WORK_DIR can't
# wipe something else.
KAFKA_MARKER=".kbridge-test-kafka"

log() { printf '[kafka-test] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The jar cache is keyed by Kafka version and by a checksum of pom.xml, so
# editing the pom (another dependency, an exclusion) can't silently reuse a
# stale classpath. cksum is POSIX, unlike sha256sum/shasum.
kafka_libs_dir() {
  local sum
  sum="$(cksum <"$KAFKA_SCRIPT_DIR/pom.xml" | cut -d' ' -f1)"
  printf '%s/kafka-%s-%s/libs\n' "$KBRIDGE_KAFKA_CACHE" "$KAFKA_VERSION" "$sum"
}

# Downloads the broker's jars with Maven unless the cache already has them.
# Prints the libs directory.
kafka_ensure_libs() {
  local libs tmp start
  libs="$(kafka_libs_dir)"
  if [ -f "$libs/.complete" ]; then
    printf '%s\n' "$libs"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "Maven (mvn) is needed once to fetch Kafka's jars into $libs (Debian: apt-get install -y maven)"
  mkdir -p "$(dirname "$libs")"
  # Download next to the final place and rename at the end, so an interrupted
  # or concurrent run never leaves a half-filled libs dir that looks complete.
  tmp="$(mktemp -d "$(dirname "$libs")/libs.tmp.XXXXXX")"
  log "fetching Apache Kafka $KAFKA_VERSION jars with Maven into $libs (first run only)"
  start=$SECONDS
  # Maven's output is kept aside and shown only on failure: even with -q it
  # prints stray ANSI codes, and our stderr should stay readable.
  if ! mvn -q -B -f "$KAFKA_SCRIPT_DIR/pom.xml" \
      -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies \
      -DincludeScope=runtime \
      -DoutputDirectory="$tmp" >"$tmp.mvn.log" 2>&1; then
    cat "$tmp.mvn.log" >&2
    rm -rf "$tmp" "$tmp.mvn.log"
    rmdir "$(dirname "$libs")" 2>/dev/null || true
    die "mvn dependency:copy-dependencies failed for Kafka $KAFKA_VERSION"
  fi
  rm -f "$tmp.mvn.log"
  [ -n "$(ls "$tmp"/kafka_2.13-*.jar 2>/dev/null)" ] || { rm -rf "$tmp"; die "Maven produced no kafka_2.13 jar in $tmp"; }
  touch "$tmp/.complete"
  if [ -d "$libs" ]; then
    rm -rf "$tmp" # someone else finished first
  else
    mv "$tmp" "$libs"
  fi
  log "jars ready in $((SECONDS - start))s ($(find "$libs" -name '*.jar' | wc -l | tr -d ' ') jars)"
  printf '%s\n' "$libs"
}

# Kafka 4.x needs Java 17+ for the broker; fail with a clear message rather
# than an UnsupportedClassVersionError buried in the broker log.
kafka_check_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "java not found (need 17+; Debian: apt-get install -y openjdk-17-jre-headless)"
  local v major
  v="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
  major="${v%%.*}"
  [ "$major" = 1 ] && major=8
  case "$major" in
    '' | *[!0-9]*) log "could not parse the Java version from '$JAVA -version'; trying anyway" ;;
    *) [ "$major" -ge 17 ] || die "Kafka $KAFKA_VERSION needs Java 17+, found $v" ;;
  esac
}

# True if something accepts TCP connections on 127.0.0.1:$1. Uses bash's
# /dev/tcp so no nc/curl is needed; on loopback a closed port is refused at once.
kafka_port_open() {
  (exec 3<>"/dev/tcp/$KAFKA_HOST/$1") 2>/dev/null
}

# Prints the broker's pid if the pid file names a live Kafka broker process.
# Guards against pid reuse after a crash/reboot by checking the command line
# where /proc exists.
kafka_running_pid() {
  [ -f "$KAFKA_PID_FILE" ] || return 1
  local pid
  pid="$(cat "$KAFKA_PID_FILE" 2>/dev/null)"
  case "$pid" in '' | *[!0-9]*) return 1 ;; esac
  kill -0 "$pid" 2>/dev/null || return 1
  if [ -r "/proc/$pid/cmdline" ]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'kafka\.Kafka' || return 1
  fi
  printf '%s\n' "$pid"
}

# Runs a Kafka JVM class (a CLI tool) on the cached classpath with a small,
# fast-starting JVM and quiet logging. Usage: kafka_run_class CLASS [ARGS...]
kafka_run_class() {
  local libs cls
  libs="$(kafka_ensure_libs)" || return 1
  cls="$1"
  shift
  # C1-only and serial GC cut a short-lived tool's start-up by about a second.
  "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
    -Dlog4j2.configurationFile="$KAFKA_SCRIPT_DIR/log4j2-tools.properties" \
    -cp "$libs/*" "$cls" "$@"
}

# Removes the work dir, but only one that start.sh created.
kafka_remove_work_dir() {
  [ -d "$KAFKA_WORK_DIR" ] || return 0
  if [ -f "$KAFKA_WORK_DIR/$KAFKA_MARKER" ]; then
    rm -rf "$KAFKA_WORK_DIR"
  else
    die "refusing to delete $KAFKA_WORK_DIR: it has no $KAFKA_MARKER marker, so start.sh did not create it"
  fi
}

# Serialises start.sh/stop.sh for one KAFKA_WORK_DIR: several test packages
# may call start.sh at once, and without this one could wipe the work dir
# ("stale") while another is still formatting it. mkdir is atomic and
# portable (no flock on macOS). A lock whose holder died is taken over.
kafka_lock() {
  local holder deadline=$((SECONDS + KAFKA_READY_TIMEOUT + KAFKA_STOP_TIMEOUT + 30))
  mkdir -p "$(dirname "$KAFKA_LOCK_DIR")"
  while ! mkdir "$KAFKA_LOCK_DIR" 2>/dev/null; do
    holder="$(cat "$KAFKA_LOCK_DIR/pid" 2>/dev/null || true)"
    if [ -n "$holder" ] && ! kill -0 "$holder" 2>/dev/null; then
      log "taking over the lock of dead pid $holder"
      rm -rf "$KAFKA_LOCK_DIR"
      continue
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "timed out waiting for $KAFKA_LOCK_DIR (held by pid ${holder:-?})"
    sleep 0.2
  done
  printf '%s\n' "$$" >"$KAFKA_LOCK_DIR/pid"
  trap 'rm -rf "$KAFKA_LOCK_DIR"' EXIT
}
