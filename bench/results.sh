#!/usr/bin/env bash
# shellcheck disable=SC2016 # backquotes in printf formats are markdown, not expansions
# Runs every benchmark of bench/ against one broker and writes
# bench/RESULTS.md: the machine, the commands, each benchmark's tables, a
# table of kbridge's footprint per scenario, and the product targets of
# DESIGN issue 5 with the measured value and met / not met.
#
#   bench/results.sh                 # the full run: about 6-8 minutes on 2 CPUs
#   ROUNDS=1 RECORDS=5000 PUBLISH_DURATION=1s ORDERING_RECORDS=300 LAGGING_RECORDS=1000 \
#     IDLE_FOR=1s OUT=/tmp/RESULTS.md bench/results.sh   # a quick check of the script itself
#
# Like bench/run.sh it builds bin/kbridge (scripts/build.sh) and starts the
# test broker (test/kafka/start.sh, port $KAFKA_PORT or 19092) unless
# KAFKA_BROKERS is set; the broker is left running (test/kafka/stop.sh stops
# it). Every benchmark runs even if an earlier one failed; the exit code is
# 1 if any failed. Progress goes to stderr; each benchmark's table, metrics
# and progress log are kept in a temporary directory, named at the end.
#
# Knobs (environment):
#   ROUNDS            rounds of every benchmark (3)
#   PUBLISH_DURATION  measured time of each publish scenario per round (8s)
#   RECORDS           backlog of -scenario batch: scenarios 4, 6 and 7 (100000)
#   BATCH_MAX_RECORDS the batched kbridge's KBRIDGE_BATCH_MAX_RECORDS (100)
#   ORDERING_RECORDS  backlog of -scenario ordering, scenario 5 (2000)
#   LAGGING_RECORDS   backlog of the lagging partition (10000)
#   IDLE_FOR          how long -scenario idle samples RSS (5s)
#   OUT               the report (bench/RESULTS.md)
# Not -e: a failed benchmark is recorded and the others still run.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

ROUNDS="${ROUNDS:-3}"
PUBLISH_DURATION="${PUBLISH_DURATION:-8s}"
RECORDS="${RECORDS:-100000}"
BATCH_MAX_RECORDS="${BATCH_MAX_RECORDS:-100}"
ORDERING_RECORDS="${ORDERING_RECORDS:-2000}"
LAGGING_RECORDS="${LAGGING_RECORDS:-10000}"
IDLE_FOR="${IDLE_FOR:-5s}"
OUT="${OUT:-bench/RESULTS.md}"

log() { printf '[bench/results] %s\n' "$*" >&2; }

started=$(date -u +%s)
pressure_start="$(head -n1 /proc/pressure/cpu 2>/dev/null || echo n/a)"
work="$(mktemp -d "${TMPDIR:-/tmp}/kbridge-results.XXXXXX")"

build_log="$work/build.log"
if ! scripts/build.sh bin/kbridge 2>"$build_log"; then
  cat "$build_log" >&2
  log "building bin/kbridge failed"
  exit 1
fi
cat "$build_log" >&2
kbridge_version="$(sed -n 's/^built .* (\(.*\))$/\1/p' "$build_log" | tail -n1)"

if [[ -z "${KAFKA_BROKERS:-}" ]]; then
  broker_line="$(test/kafka/start.sh)" || { log "starting the test broker failed"; exit 1; }
  export "${broker_line?}"
fi
log "broker: $KAFKA_BROKERS; files in $work"

# The benchmarks. Each: a slug, then the command's arguments after go run.
declare -a slugs=() titles=() commands=() codes=()
add() {
  slugs+=("$1")
  titles+=("$2")
  commands+=("$3")
}
add publish "Publish: kbridge against franz-go used directly (scenarios 1-3)" \
  "./bench/publish -kbridge bin/kbridge -duration $PUBLISH_DURATION -rounds $ROUNDS"
add batch "Delivery: plain client, kbridge single and kbridge batched on one backlog (scenarios 4, 6 and 7)" \
  "./bench/deliver -kbridge bin/kbridge -scenario batch -records $RECORDS -batch-max-records $BATCH_MAX_RECORDS -rounds $ROUNDS"
add ordering "Ordering key against ordering partition (scenario 5)" \
  "./bench/deliver -kbridge bin/kbridge -scenario ordering -records $ORDERING_RECORDS -rounds $ROUNDS"
add lagging "One lagging partition of four" \
  "./bench/deliver -kbridge bin/kbridge -scenario lagging -records $LAGGING_RECORDS -rounds $ROUNDS"
add idle "Idle: kbridge on a caught-up topic (scenario 8)" \
  "./bench/deliver -kbridge bin/kbridge -scenario idle -idle-for $IDLE_FOR -rounds $ROUNDS"

failed=0
for i in "${!slugs[@]}"; do
  slug="${slugs[$i]}"
  log "running ${slug}: go run ${commands[$i]}"
  # shellcheck disable=SC2086 # the command is split into its arguments on purpose
  go run ${commands[$i]} -metrics "$work/$slug.metrics" >"$work/$slug.md" 2> >(tee "$work/$slug.log" >&2)
  code=$?
  codes+=("$code")
  if [[ $code -ne 0 ]]; then
    failed=1
    log "$slug exited $code (its table is kept; see $work/$slug.log)"
  fi
done

# m FILE KEY prints the metric, or nothing.
m() { [[ -f "$work/$1.metrics" ]] && awk -v k="$2" '$1 == k { print $2; exit }' "$work/$1.metrics"; }
# num VALUE FORMAT prints the value formatted, or a dash.
num() { if [[ -n "$1" ]]; then awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'; else printf '—'; fi; }
# verdict VALUE OP LIMIT: met, not met, or not measured.
verdict() {
  if [[ -z "$1" ]]; then printf 'not measured'; return; fi
  awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { ok = (op == ">=") ? v >= t : v <= t; printf "%s", ok ? "met" : "**not met**" }'
}
# largest VALUE... prints the largest non-empty value.
largest() { printf '%s\n' "$@" | awk 'NF { if (!seen || $1 > best) best = $1; seen = 1 } END { if (seen) print best }'; }

kafka_version() {
  local port="${KAFKA_BROKERS##*:}" dir pid v=""
  port="${port%%,*}"
  dir="${KAFKA_WORK_DIR:-${TMPDIR:-/tmp}/kbridge-kafka-$port}"
  if [[ -f "$dir/kafka.pid" ]] && pid="$(cat "$dir/kafka.pid")" && kill -0 "$pid" 2>/dev/null; then
    v="$(ps -o args= -p "$pid" | grep -o 'kafka-[0-9][0-9.]*-[0-9]*/libs' | head -n1 | sed 's/^kafka-\([0-9.]*\)-.*/\1/')"
  fi
  printf '%s' "${v:-unknown (not a broker of test/kafka/start.sh)}"
}

mem_gib="$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
cpu_model="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
elapsed=$(( $(date -u +%s) - started ))

{
  printf '# kbridge benchmark results\n\n'
  printf 'Written by `bench/results.sh`; see bench/README.md for what each benchmark does and how it measures.\n\n'
  printf -- '- date: %s (UTC), run took %dm%02ds\n' "$(date -u -d "@$started" '+%Y-%m-%d %H:%M')" $((elapsed / 60)) $((elapsed % 60))
  printf -- '- machine: %s CPUs (%s), %s memory, %s\n' "$(nproc)" "${cpu_model:-unknown CPU}" "$mem_gib" "$(go version | awk '{ print $3, $4 }')"
  printf -- '- Kafka %s at %s, in its own process on the same machine\n' "$(kafka_version)" "$KAFKA_BROKERS"
  printf -- '- kbridge: bin/kbridge built by scripts/build.sh from commit %s (version %s)\n' "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "${kbridge_version:-unknown}"
  printf -- '- CPU pressure (/proc/pressure/cpu; other processes on the machine show here): at the start %s; at the end %s\n' \
    "$pressure_start" "$(head -n1 /proc/pressure/cpu 2>/dev/null || echo n/a)"
  printf '\nTo reproduce:\n\n```sh\n'
  printf 'ROUNDS=%s PUBLISH_DURATION=%s RECORDS=%s BATCH_MAX_RECORDS=%s ORDERING_RECORDS=%s LAGGING_RECORDS=%s IDLE_FOR=%s bench/results.sh\n' \
    "$ROUNDS" "$PUBLISH_DURATION" "$RECORDS" "$BATCH_MAX_RECORDS" "$ORDERING_RECORDS" "$LAGGING_RECORDS" "$IDLE_FOR"
  printf '```\n\nwhich runs, after `scripts/build.sh bin/kbridge` and with `KAFKA_BROKERS` set:\n\n```sh\n'
  for i in "${!slugs[@]}"; do printf 'go run %s\n' "${commands[$i]}"; done
  printf '```\n\n'
  printf 'Read the ratios rather than the absolute rates: the broker, kbridge and the benchmark share the machine'"'"'s CPUs, and\n'
  printf 'each ratio compares two sides measured in the same round.\n'

  # The targets.
  unary="$(m publish unary.ratio)"
  stream1="$(m publish stream1.ratio)"
  stream10="$(m publish stream10.ratio)"
  delivery="$(m batch ratio.single/baseline)"
  batching="$(m batch ratio.batched/single)"
  ordering="$(m ordering ratio.key/partition)"
  idle_rss="$(m idle idle.rss_mib)"
  idle_rss_max="$(m idle idle.rss_mib_max)"
  single_rss="$(m batch single.peak_rss_mib_max)"
  batched_rss="$(m batch batched.peak_rss_mib_max)"
  drain_rss="$(largest "$single_rss" "$batched_rss")"
  ready_max="$(largest "$(m publish ready_ms_max)" "$(m batch ready_ms_max)" "$(m ordering ready_ms_max)" "$(m lagging ready_ms_max)" "$(m idle ready_ms_max)")"
  ready_idle="$(m idle idle.ready_ms)"
  starts=$(( 1 + ROUNDS * 2 + ROUNDS * 2 + ROUNDS + ROUNDS ))
  printf '\n## Targets\n\n'
  printf '| target (DESIGN issue 5) | measured | met? |\n|---|---|---|\n'
  printf '| Unary Publish ≥ 0.5× direct ProduceSync | %s× (records/s, medians of the rounds) | %s |\n' "$(num "$unary" '%.2f')" "$(verdict "$unary" '>=' 0.5)"
  printf '| PublishStream ≥ 0.8× direct async produce (1 record per request) | %s× | %s |\n' "$(num "$stream1" '%.2f')" "$(verdict "$stream1" '>=' 0.8)"
  printf '| PublishStream ≥ 0.8× direct async produce (10 records per request) | %s× | %s |\n' "$(num "$stream10" '%.2f')" "$(verdict "$stream10" '>=' 0.8)"
  printf '| Delivery (scenario 4) ≥ 0.5× the plain client'"'"'s rate | %s× (kbridge single/baseline, median of the rounds'"'"' ratios) | %s |\n' "$(num "$delivery" '%.2f')" "$(verdict "$delivery" '>=' 0.5)"
  printf '| Ordering key ≥ 20× ordering partition (scenario 5) | %s× | %s |\n' "$(num "$ordering" '%.2f')" "$(verdict "$ordering" '>=' 20)"
  printf '| Batching ≥ 3× single delivery (scenario 6) | %s× (batched/single, median of the rounds'"'"' ratios) | %s |\n' "$(num "$batching" '%.2f')" "$(verdict "$batching" '>=' 3)"
  printf '| RSS ≤ 20 MiB idle | %s MiB (median VmRSS once caught up; largest sample %s MiB; RssAnon %s + RssFile %s MiB) | %s |\n' \
    "$(num "$idle_rss" '%.1f')" "$(num "$idle_rss_max" '%.1f')" "$(num "$(m idle idle.rss_anon_mib)" '%.1f')" "$(num "$(m idle idle.rss_file_mib)" '%.1f')" \
    "$(verdict "$idle_rss" '<=' 20)"
  printf '| RSS ≤ 100 MiB peak while draining the %s-record backlog | %s MiB (largest VmHWM over the rounds: single %s, batched %s MiB) | %s |\n' \
    "$RECORDS" "$(num "$drain_rss" '%.1f')" "$(num "$single_rss" '%.1f')" "$(num "$batched_rss" '%.1f')" "$(verdict "$drain_rss" '<=' 100)"
  printf '| /readyz ready within 200 ms of start | %s ms at most over the run'"'"'s %d kbridge starts (idle scenario: median %s ms) | %s |\n' \
    "$(num "$ready_max" '%.0f')" "$starts" "$(num "$ready_idle" '%.0f')" "$(verdict "$ready_max" '<=' 200)"

  # Scenario 8: kbridge's footprint in each scenario.
  printf '\n## kbridge'"'"'s footprint per scenario (scenario 8)\n\n'
  printf '| scenario | kbridge side | records/s | kbridge CPU s/100k records | kbridge peak RSS (median, largest) | kbridge ready (median, largest) |\n'
  printf '|---|---|---:|---:|---:|---:|\n'
  for side in unary stream1 stream10 rest; do
    printf '| publish | %s | %s | %s | %s MiB | %s ms |\n' "$side" "$(num "$(m publish "$side.records_per_s")" '%.0f')" \
      "$(num "$(m publish "$side.cpu_s_per_100k")" '%.2f')" "$(num "$(m publish "$side.peak_rss_mib")" '%.0f')" "$(num "$(m publish ready_ms)" '%.0f')"
  done
  for row in "batch single" "batch batched" "ordering partition" "ordering key" "lagging kbridge"; do
    read -r slug side <<<"$row"
    printf '| %s | %s | %s | %s | %s, %s MiB | %s, %s ms |\n' "$slug" "$side" "$(num "$(m "$slug" "$side.records_per_s")" '%.0f')" \
      "$(num "$(m "$slug" "$side.cpu_s_per_100k")" '%.2f')" "$(num "$(m "$slug" "$side.peak_rss_mib")" '%.0f')" "$(num "$(m "$slug" "$side.peak_rss_mib_max")" '%.0f')" \
      "$(num "$(m "$slug" "$side.ready_ms")" '%.0f')" "$(num "$(m "$slug" "$side.ready_ms_max")" '%.0f')"
  done
  printf '| idle | caught up, %s partitions | — | %s ms of CPU per second | idle %s MiB; VmHWM %s, %s MiB | %s, %s ms |\n' \
    "$(num "$(m idle idle.partitions)" '%.0f')" "$(num "$(m idle idle.cpu_ms_per_s)" '%.1f')" "$(num "$idle_rss" '%.0f')" \
    "$(num "$(m idle idle.peak_rss_mib)" '%.0f')" "$(num "$(m idle idle.peak_rss_mib_max)" '%.0f')" "$(num "$ready_idle" '%.0f')" "$(num "$(m idle idle.ready_ms_max)" '%.0f')"
  printf '\nRecords/s and CPU: medians of the rounds. CPU per 100k records: the kbridge process'"'"'s utime+stime, start-up included for\n'
  printf 'the delivery scenarios (a new process for each side of each round), over the measured window for publish (one process for\n'
  printf 'the whole run, so one ready time). Peak RSS: VmHWM of each delivery process (median and largest over the rounds); for\n'
  printf 'publish, the largest VmRSS sampled every 50 ms during the row, over the rounds.\n'

  # The benchmarks' own tables.
  for i in "${!slugs[@]}"; do
    slug="${slugs[$i]}"
    printf '\n## %s\n\n' "${titles[$i]}"
    printf '`go run %s` (exit %s)\n\n' "${commands[$i]}" "${codes[$i]}"
    # Each table starts with its own "## kbridge ..." heading: one level down here.
    sed 's/^## /### /' "$work/$slug.md"
  done
} >"$OUT"

log "wrote $OUT in $((elapsed / 60))m$((elapsed % 60))s; tables, metrics and logs in $work"
exit "$failed"
