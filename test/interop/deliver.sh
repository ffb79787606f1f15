#!/usr/bin/env bash
# Interop check of delivery with real clients: Debian's kcat (librdkafka, the
# library under Ruby's rdkafka) produces a record with a key and two headers
# to a fresh topic; the built kbridge binary consumes it and POSTs it to a
# tiny Python webhook, which appends each request's headers and body to a
# file. The body, Kafka-Key and Kafka-Header-a/b must arrive intact, with the
# webhook contract's coordinates. Finally SIGTERM kbridge and require exit 0.
#
#   KAFKA_BROKERS=127.0.0.1:19092 test/interop/deliver.sh [path/to/kbridge]
#
# The binary is $1, else $KBRIDGE_BIN, else bin/kbridge (scripts/build.sh).
# Needs: kcat, curl, python3, and test/kafka/tool.sh (Java) to create the
# topic, since the test broker does not auto-create topics. Quiet on success
# but for one line.
set -euo pipefail
cd "$(dirname "$0")/../.."

brokers="${KAFKA_BROKERS:?set KAFKA_BROKERS to a running broker (test/kafka/start.sh)}"
bin="${1:-${KBRIDGE_BIN:-bin/kbridge}}"
[[ -x "$bin" ]] || { echo "deliver: no kbridge binary at $bin (scripts/build.sh)" >&2; exit 1; }
work="$(mktemp -d)"
suffix="$(date +%s)-$RANDOM"
topic="interop-deliver-$suffix"
group="interop-deliver-$suffix"
pid="" hook_pid=""
cleanup() {
  local p
  for p in "$pid" "$hook_pid"; do
    # wait reaps it, so bash reports no "Killed" job on a quiet success.
    if [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null; then { kill -KILL "$p"; wait "$p"; } 2>/dev/null || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "deliver: FAIL: $*" >&2
  echo "--- kbridge log" >&2; cat "$work/kbridge.log" >&2 2>/dev/null || true
  echo "--- webhook requests" >&2; cat "$work/requests.jsonl" >&2 2>/dev/null || true
  echo "--- webhook log" >&2; cat "$work/hook.log" >&2 2>/dev/null || true
  exit 1
}
# until_ok SECONDS COMMAND...: retry COMMAND every 0.1 s until it succeeds;
# false if it never did within SECONDS.
until_ok() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# The webhook: appends one JSON line per request (headers in order, body in
# base64) and answers 204. It binds port 0 and writes the port it got.
python3 -c '
import base64, http.server, json, os, sys
out, portfile = sys.argv[1], sys.argv[2]
class Hook(http.server.BaseHTTPRequestHandler):
    def body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                chunk = self.rfile.read(size + 2)[:size]
                if size == 0:
                    return data
                data += chunk
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))
    def do_POST(self):
        line = json.dumps({"path": self.path, "headers": list(self.headers.items()),
                           "body": base64.b64encode(self.body()).decode()})
        with open(out, "a") as f:
            f.write(line + "\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
srv = http.server.HTTPServer(("127.0.0.1", 0), Hook)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
' "$work/requests.jsonl" "$work/hook.port" >"$work/hook.log" 2>&1 &
hook_pid=$!
until_ok 10 test -s "$work/hook.port" || fail "the Python webhook did not start"
hook_url="http://127.0.0.1:$(cat "$work/hook.port")/kafka"

# A fresh topic with one partition, so the record's coordinates are known.
test/kafka/tool.sh org.apache.kafka.tools.TopicCommand --bootstrap-server "$brokers" \
  --create --topic "$topic" --partitions 1 --replication-factor 1 >"$work/topic.log" 2>&1 ||
  fail "create topic $topic: $(cat "$work/topic.log")"

# Ports 0: the kernel picks free ones, and kbridge logs what it bound.
KBRIDGE_BROKERS="$brokers" KBRIDGE_SUBSCRIBE_TOPICS="$topic" KBRIDGE_WEBHOOK_URL="$hook_url" \
  KBRIDGE_GROUP_ID="$group" KBRIDGE_SESSION_TIMEOUT=6s KBRIDGE_SHUTDOWN_TIMEOUT=10s \
  "$bin" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 \
  >"$work/kbridge.log" 2>&1 &
pid=$!

addr() { sed -n "s/.*msg=listening .*$1=\([0-9.:]*\).*/\1/p" "$work/kbridge.log" | head -1; }
ready() {
  kill -0 "$pid" 2>/dev/null || fail "kbridge exited during start"
  local admin; admin="$(addr admin)"
  [[ -n "$admin" ]] && curl -fsS "http://$admin/readyz" >/dev/null 2>&1
}
until_ok 30 ready || fail "kbridge not ready after 30 s"

# One record with a key and two headers, written by librdkafka.
value='{"order":7,"note":"caf\u00e9 – ünïcode","tags":["a","b"]}'
key='order 7/é'
printf '%s\n' "$value" | kcat -P -b "$brokers" -t "$topic" -k "$key" -H a=1 -H b=2 2>"$work/kcat.log" ||
  fail "kcat produce: $(cat "$work/kcat.log")"

# check exits 0 when the webhook got the record intact, 3 while it has
# nothing yet, and 1 with a message on any difference.
check() {
  python3 -c '
import base64, json, sys
path, value, key, topic, group = sys.argv[1:]
try:
    lines = open(path).read().splitlines()
    reqs = [json.loads(l) for l in lines]
except (FileNotFoundError, ValueError):
    sys.exit(3)  # nothing yet, or a line still being written
if not reqs:
    sys.exit(3)
r = reqs[0]
h = {}
for name, v in r["headers"]:
    h.setdefault(name.lower(), []).append(v)
want = {
    "kafka-key": "order 7/%C3%A9",  # percent-encoded outside 0x20-0x7E
    "kafka-header-a": "1",
    "kafka-header-b": "2",
    "kafka-topic": topic,
    "kafka-partition": "0",
    "kafka-offset": "0",
    "idempotency-key": group + "/" + topic + "/0/0",
    "delivery-attempt": "1",
    "content-type": "application/octet-stream",
    "ce-id": topic + "/0/0",
    "ce-source": "kafka:" + topic,
}
bad = [f"{n}: {h.get(n)!r}, want [{v!r}]" for n, v in want.items() if h.get(n) != [v]]
body = base64.b64decode(r["body"])
if body != value.encode():
    bad.append(f"body {body!r}, want {value.encode()!r}")
if r["path"] != "/kafka":
    bad.append("path %r, want /kafka" % r["path"])
if len(reqs) != 1:
    bad.append(f"{len(reqs)} requests, want 1")
if bad:
    print("\n".join(bad))
    sys.exit(1)
' "$work/requests.jsonl" "$value" "$key" "$topic" "$group"
}
delivered() {
  local rc=0
  check >"$work/check.txt" 2>&1 || rc=$?
  case "$rc" in
    0) return 0 ;;
    3) return 1 ;;
    *) fail "the webhook got something else than kcat wrote:"$'\n'"$(cat "$work/check.txt")" ;;
  esac
}
until_ok 30 delivered || fail "the record did not reach the webhook within 30 s"

# Graceful stop: SIGTERM must end kbridge with exit 0, within its budget.
kill -TERM "$pid"
timeout 30 tail -s 0.1 --pid="$pid" -f /dev/null || fail "kbridge still running 30 s after SIGTERM"
code=0
wait "$pid" || code=$?
pid=""
[[ "$code" == 0 ]] || fail "kbridge exited with $code after SIGTERM"
# Nothing more may have arrived meanwhile (the record is acked once).
check >"$work/check.txt" 2>&1 || fail "after shutdown: $(cat "$work/check.txt")"
echo "deliver: ok: kcat -> Kafka -> kbridge -> webhook: body, Kafka-Key, Kafka-Header-a/b and coordinates intact; SIGTERM exit 0"
