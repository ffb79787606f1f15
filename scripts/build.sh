#!/usr/bin/env bash
# Builds the static kbridge binary. The Dockerfile and CI both call this
# script, so the image holds exactly what CI tested.
#
#   scripts/build.sh [OUTPUT]     default output: bin/kbridge
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bin/kbridge}"
version="${KBRIDGE_VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
# CGO off: a static binary that runs on a distroless/static base image.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/kbridge/kbridge/app.Version=${version}" -o "$out" ./cmd/kbridge
echo "built $out ($version)" >&2
