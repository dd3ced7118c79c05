#!/usr/bin/env bash
# Pacing benchmark: a backlog of invitations against the emulator with
# scaled-down rate windows and per-call latency. Not a test: it prints figures.
#
#   scripts/bench_pacing.sh [--rows 2000] [--latency-ms 300] [--concurrency 8]
#
# The emulator enforces 100 calls per 5 s and 1,000 per minute (with 429s);
# retl is configured with the same windows. Reports the sustained rate against
# the tighter window, the 429s received and duplicate reference numbers.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=2000
latency=300
concurrency=8
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --latency-ms) latency="$2"; shift 2 ;;
    --concurrency) concurrency="$2"; shift 2 ;;
    *) echo "usage: scripts/bench_pacing.sh [--rows N] [--latency-ms MS] [--concurrency N]" >&2; exit 2 ;;
  esac
done

cargo build --release -q -p retl
retl="$PWD/target/release/retl"
work=$(mktemp -d)
trap 'kill "$emulator_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$retl" emulator --port "$port" --latency-ms "$latency" --rate-limit 100/5s --rate-limit 1000/1m > "$work/emulator.log" 2>&1 &
emulator_pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/_emulator/stats" > /dev/null && break; sleep 0.1; done

python3 - "$work/warehouse.db" "$rows" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE orders (order_id INTEGER PRIMARY KEY, full_name TEXT, email TEXT)")
db.executemany("INSERT INTO orders VALUES (?, ?, ?)",
               ((i, f"Customer {i}", f"customer{i}@shop.example") for i in range(1, int(sys.argv[2]) + 1)))
db.commit()
PY
mkdir -p "$work/configs/destinations" "$work/configs/activations"
cat > "$work/configs/destinations/trustpilot.yaml" <<YAML
type: trustpilot
auth: { api_key: emulator-key, api_secret: emulator-secret, business_user_id: user-emulator }
endpoints: { auth: "http://127.0.0.1:$port", invitations: "http://127.0.0.1:$port" }
defaults: { business_unit_id: bu-emulator }
concurrency: $concurrency
rate_limits:
  - { requests: 100, per_seconds: 5 }
  - { requests: 1000, per_seconds: 60 }
YAML
cat > "$work/configs/activations/orders.yaml" <<YAML
source: { connection: "sqlite://$work/warehouse.db", table: orders }
destination: trustpilot
first_run: send_all
mapping: { reference_number: order_id, consumer_name: full_name, consumer_email: email }
YAML

start=$(date +%s.%N)
"$retl" --config-dir "$work/configs" --state "sqlite://$work/state.db" run orders --json > "$work/summary.json"
end=$(date +%s.%N)

curl -sf "http://127.0.0.1:$port/_emulator/stats" > "$work/stats.json"
curl -sf "http://127.0.0.1:$port/_emulator/invitations" > "$work/invitations.json"
python3 - "$work" "$start" "$end" <<'PY'
import json, sys, collections
work, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
summary = json.load(open(f"{work}/summary.json"))
stats = json.load(open(f"{work}/stats.json"))
refs = collections.Counter(i["body"]["referenceNumber"] for i in json.load(open(f"{work}/invitations.json"))["invitations"])
seconds = end - start
sent = summary["counts"]["sent"]
tighter = min(100 / 5, 1000 / 60)
# The first minute can hold a full minute window (1,000 calls): the steady
# state is the tighter window, so the sustained rate is measured from the
# moment the first 1,000 calls were allowed, i.e. over the whole run.
rate = sent / seconds
print(f"rows sent:            {sent} of {summary['counts']['read']} ({summary['status']})")
print(f"wall time:            {seconds:.1f} s")
print(f"sustained rate:       {rate:.2f} calls/s (tighter window: {tighter:.2f}/s, {100 * rate / tighter:.1f}%)")
print(f"429s received:        {stats['rate_limited']}")
print(f"duplicate references: {sum(1 for n in refs.values() if n > 1)}")
PY
