#!/usr/bin/env bash
# How long `retl runs find` takes on a run log of N rows (default 1,000,000):
# fills a SQLite state database with 1,000 runs of N/1,000 logged rows each,
# then times a search for a reference that is in it and for one that is not.
#
#   scripts/bench_find.sh [--rows N]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=1000000
if [ "${1:-}" = "--rows" ]; then rows="$2"; fi
command -v sqlite3 >/dev/null || { echo "needs the sqlite3 command" >&2; exit 1; }
cargo build --release -q -p retl
bin=target/release/retl
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
state="sqlite://$dir/state.db"
mkdir -p "$dir/configs"
# Creates the state database at the current schema (its indexes included).
"$bin" --config-dir "$dir/configs" --state "$state" runs list >/dev/null
per_run=$((rows / 1000))
start=$(date +%s.%N)
sqlite3 "$dir/state.db" <<SQL
PRAGMA journal_mode = WAL;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999)
INSERT INTO runs (run_id, activation, status, started_at, finished_at, counts)
SELECT printf('01a20000-0000-7000-8000-%012d', i), 'orders', 'completed',
       strftime('%Y-%m-%dT%H:%M:%fZ', '2026-01-01', '+' || i || ' hours'),
       strftime('%Y-%m-%dT%H:%M:%fZ', '2026-01-01', '+' || i || ' hours'),
       '{"read":0,"new":0,"sent":0,"rejected":0,"failed":0,"skipped":0,"ignored_changed":0,"already_sent":0,"already_rejected":0,"uncertain":0,"recovered":0}'
FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $rows - 1)
INSERT INTO run_rows (run_id, seq, row_key, reference, outcome, reason, status_code, at)
SELECT printf('01a20000-0000-7000-8000-%012d', i / $per_run), i % $per_run, CAST(i AS TEXT),
       'ORD-' || i, CASE WHEN i % 50 = 0 THEN 'rejected' ELSE 'sent' END,
       CASE WHEN i % 50 = 0 THEN 'consumer_email: not a valid email address' END,
       CASE WHEN i % 50 = 0 THEN NULL ELSE 202 END,
       strftime('%Y-%m-%dT%H:%M:%fZ', '2026-01-01', '+' || (i / $per_run) || ' hours')
FROM n;
COMMIT;
SQL
filled=$(date +%s.%N)
count=$(sqlite3 "$dir/state.db" "SELECT COUNT(*) FROM run_rows")
echo "run log: $count rows in 1000 runs (filled in $(echo "$filled - $start" | bc) s)"
needle="ORD-$((rows / 2 + 7))"
for query in "$needle" "ORD-not-there"; do
  best=""
  for _ in 1 2 3 4 5; do
    t0=$(date +%s%N)
    "$bin" --config-dir "$dir/configs" --state "$state" runs find "$query" --json >/dev/null
    t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 ))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
  done
  echo "retl runs find $query: best of 5, $best ms (whole process: start, open, query, print)"
done
