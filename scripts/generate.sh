#!/usr/bin/env bash
# Lints the API and regenerates gen/ from proto/ with buf, offline.
#
# buf lives in its own module (tools/go.mod) because it needs newer protobuf
# and many modules the service itself must not depend on; the code-generation
# plugins are tools of the main module, so gen/ is built by exactly the
# protobuf/grpc/gateway versions the service links against.
#
#   scripts/generate.sh          lint and regenerate
#   scripts/generate.sh --check  also fail if gen/ differs from what is committed
set -euo pipefail
cd "$(dirname "$0")/.."

buf() { go tool -modfile=tools/go.mod buf "$@"; }

buf lint
buf generate

if [[ "${1:-}" == "--check" ]]; then
  if ! git diff --exit-code --stat -- gen/ || [[ -n "$(git status --porcelain -- gen/)" ]]; then
    echo "gen/ is out of date: run scripts/generate.sh and commit the result" >&2
    git status --porcelain -- gen/ >&2
    exit 1
  fi
  echo "gen/ is current"
fi
