#!/usr/bin/env bash
# Every test of the JavaScript client, on a fresh Debian machine with Go
# and Node.js >= 20: installs Chromium (apt) and the pinned dev packages
# (npm ci), then runs the type check, the unit tests, the bundle-size
# check, the integration tests against real meshcast nodes, and the
# browser test of the demo chat. .ci/run calls it; so can a developer.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:/usr/local/go/bin"

node -e 'const [M] = process.versions.node.split(".").map(Number); if (M < 20) { console.error("Node.js >= 20 needed, have " + process.version); process.exit(1); }'
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
chromium --version
npm ci --no-audit --no-fund

echo "== types (tsc --noEmit)"
npm run --silent types
echo "== unit tests"
npm test --silent
echo "== bundle size"
npm run --silent size

bindir=$(mktemp -d)
trap 'rm -rf "$bindir"' EXIT
go build -o "$bindir/meshcast" ../cmd/meshcast
export MESHCAST_BIN="$bindir/meshcast"
echo "== integration tests"
npm run --silent test:integration
echo "== browser test"
npm run --silent test:browser
