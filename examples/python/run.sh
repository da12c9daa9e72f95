#!/usr/bin/env bash
# Starts `cadrex serve` on the embedded default in a scratch directory and calls it from Python grpcio:
# whoami.py as three systems (the last with no certificate), then walkthrough.py twice (a re-run
# must write nothing new), then inspection.py twice, as the inspection agency, on walkthrough.py's
# cadre. Set CADREX to use a built binary instead of `cargo build` (which honours CARGO_TARGET_DIR).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
[ -n "${CADREX:-}" ] || cargo build --quiet --manifest-path "$root/Cargo.toml" --bin cadrex
# Wherever cargo puts its output (CARGO_TARGET_DIR, a workspace, .cargo/config).
target="$(cargo metadata --quiet --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
"${CADREX:-$target/debug/cadrex}" serve --listen "127.0.0.1:$port" --store "sqlite://$work/cadrex.db" --pki-dir "$work/pki" \
  >"$work/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  grep -q "cadrex listening" "$work/server.log" 2>/dev/null && break
  kill -0 $pid 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
grep -q "DEVELOPMENT certificates" "$work/server.log" || { echo "dev PKI was not announced"; cat "$work/server.log"; exit 1; }
python3 "$root/examples/python/whoami.py" "127.0.0.1:$port" "$work/pki" organization-360821
python3 "$root/examples/python/whoami.py" "127.0.0.1:$port" "$work/pki" audit-360802
python3 "$root/examples/python/whoami.py" "127.0.0.1:$port" "$work/pki" none
python3 "$root/examples/python/walkthrough.py" "127.0.0.1:$port" "$work/pki"
python3 "$root/examples/python/walkthrough.py" "127.0.0.1:$port" "$work/pki"
python3 "$root/examples/python/whoami.py" "127.0.0.1:$port" "$work/pki" inspection-360821
python3 "$root/examples/python/inspection.py" "127.0.0.1:$port" "$work/pki"
python3 "$root/examples/python/inspection.py" "127.0.0.1:$port" "$work/pki"
