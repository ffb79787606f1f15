#!/usr/bin/env bash
# Interop check with real clients: publish through the built kbridge binary
# with grpcurl (gRPC), curl (both REST endpoints), then read the topic back
# with Debian's kcat (librdkafka, the library under Ruby's rdkafka) and
# compare key, headers and value. Finally SIGTERM kbridge and require exit 0.
#
#   KAFKA_BROKERS=127.0.0.1:19092 test/interop/publish.sh
#
# Needs: bin/kbridge (scripts/build.sh), kcat, curl; grpcurl is run through
# `go tool -modfile=tools/go.mod grpcurl`.
set -euo pipefail
cd "$(dirname "$0")/../.."

brokers="${KAFKA_BROKERS:?set KAFKA_BROKERS to a running broker (test/kafka/start.sh)}"
bin="${KBRIDGE_BIN:-bin/kbridge}"
work="$(mktemp -d)"
topic="interop-$(date +%s)-$RANDOM"
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "interop: FAIL: $*" >&2; echo "--- kbridge log" >&2; cat "$work/kbridge.log" >&2 || true; exit 1; }

# Ports 0: the kernel picks free ones, and kbridge logs what it bound.
KBRIDGE_BROKERS="$brokers" KBRIDGE_AUTO_CREATE_TOPICS=true \
  "$bin" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 \
  >"$work/kbridge.log" 2>&1 &
pid=$!

addr() { sed -n "s/.*msg=listening .*$1=\([0-9.:]*\).*/\1/p" "$work/kbridge.log" | head -1; }
for _ in $(seq 1 300); do
  admin="$(addr admin)"
  if [[ -n "$admin" ]] && curl -fsS "http://$admin/readyz" >/dev/null 2>&1; then break; fi
  kill -0 "$pid" 2>/dev/null || fail "kbridge exited during start"
  sleep 0.1
done
grpc="$(addr grpc)"; http="$(addr http)"; admin="$(addr admin)"
curl -fsS "http://$admin/readyz" >/dev/null || fail "kbridge not ready after 30 s"

# gRPC, as in the README (grpcurl uses server reflection).
go tool -modfile=tools/go.mod grpcurl -plaintext -emit-defaults \
  -H 'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' \
  -d "{\"topic\":\"$topic\",\"records\":[{\"key\":\"k2\",\"value\":\"hi\",\"headers\":[{\"key\":\"h\",\"value\":\"$(printf v | base64)\"}]}]}" \
  "$grpc" kbridge.v1.ProducerService/Publish >"$work/grpc.json" || fail "grpcurl publish"
grep -q '"offset"' "$work/grpc.json" || fail "grpcurl answer has no offset: $(cat "$work/grpc.json")"

# REST raw body, as in the README.
curl -fsS -X POST "$http/v1/topics/$topic?key=k1" -H 'Content-Type: application/json' \
  -H 'Kafka-Header-Source: rails' -H 'ce-id: e-1' -d '{"a":1}' >"$work/raw.json" || fail "raw publish"
grep -q '"offset"' "$work/raw.json" || fail "raw answer has no offset: $(cat "$work/raw.json")"

# REST JSON batch.
curl -fsS -X POST "$http/v1/topics/$topic/records" \
  -d '{"records":[{"key":"k3","value":"{\"b\":2}","headers":[{"key":"x","value":"eQ=="}]}]}' >"$work/json.json" || fail "JSON publish"

# Read back with librdkafka. Records may sit in different partitions, so
# compare sorted lines.
kcat -C -b "$brokers" -t "$topic" -e -q -f '%k|%h|%s\n' | sort >"$work/got.txt" || fail "kcat consume"
sort >"$work/want.txt" <<'WANT'
k1|content-type=application/json,ce_id=e-1,source=rails|{"a":1}
k2|h=v,traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01|hi
k3|x=y|{"b":2}
WANT
if ! diff -u "$work/want.txt" "$work/got.txt"; then fail "kcat read something else than was published"; fi

# Graceful stop: SIGTERM must end kbridge with exit 0.
kill -TERM "$pid"
code=0
wait "$pid" || code=$?
pid=""
[[ "$code" == 0 ]] || fail "kbridge exited with $code after SIGTERM"
echo "interop: ok: grpcurl, curl (raw and JSON) -> kbridge -> Kafka -> kcat: 3 records, keys, headers and values intact; SIGTERM exit 0"
