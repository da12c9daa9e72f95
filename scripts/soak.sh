#!/usr/bin/env bash
# Soak test: a fresh seeded SQLite store, a real server on loopback, `cadrex soak` at a fixed rate.
# Usage: scripts/soak.sh [DURATION] [RATE]   (defaults 30s, 200/s)
# Environment: CADREX (binary; default target/release/cadrex, else target/debug/cadrex),
#   SOAK_CADRES (default 2000), SOAK_MAX_RSS_GROWTH_MIB (default 20).
set -euo pipefail

duration="${1:-30s}"
rate="${2:-200}"
cd "$(dirname "$0")/.."
if [[ -z "${CADREX:-}" ]]; then
  if [[ -x target/release/cadrex ]]; then CADREX=target/release/cadrex; else
    cargo build --quiet
    CADREX=target/debug/cadrex
  fi
fi

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

store="sqlite://$tmp/soak.db"
export CADREX_LOG="${CADREX_LOG:-warn}"
echo "== seeding ${SOAK_CADRES:-2000} cadres into $store"
"$CADREX" seed --store "$store" --pki-dir "$tmp/pki" --cadres "${SOAK_CADRES:-2000}"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$CADREX" serve --store "$store" --listen "127.0.0.1:$port" --pki-dir "$tmp/pki" &
server_pid=$!

echo "== soak: $rate calls/s for $duration against 127.0.0.1:$port (server pid $server_pid)"
status=0
"$CADREX" soak --server "127.0.0.1:$port" --server-pid "$server_pid" --pki-dir "$tmp/pki" \
  --rate "$rate" --duration "$duration" \
  --max-rss-growth-mib "${SOAK_MAX_RSS_GROWTH_MIB:-20}" || status=$?

kill "$server_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true
server_pid=""
# Everything the soak did went through the access log: its chain must still verify.
echo "== access log after the soak"
"$CADREX" log verify --store "$store" --key "$tmp/pki/log-signing.key" || status=$?
if [[ $status -eq 0 ]]; then echo "soak PASSED"; else echo "soak FAILED (exit $status)"; fi
exit "$status"
