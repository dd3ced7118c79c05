#!/usr/bin/env bash
# Cursor mode's cost against the rows it reads: a PostgreSQL table with an
# indexed created_at (one row a second), `incremental: {cursor: created_at,
# lookback: 1h}`, 1,000 new rows after a baseline. Not a test: it prints
# figures. Called by `scripts/bench.sh --cursor`.
#
#   scripts/bench_cursor.sh [--rows N] [--url postgres://…]
#
# Makes retl_bench_c<N>.orders with N rows (default 10,000,000) unless it holds
# N already, then, one after the other:
#   raw_copy:  psql COPY (SELECT cols FROM retl_bench_c<N>.orders) TO STDOUT > /dev/null
#   baseline:  `retl run`, first_run: skip_existing (every key into the state's
#              key segments; the high-water mark set)
#   then 1,000 new rows, and as `retl run --dry-run` (reads, diffs, maps; no send):
#   cursor:    the run reads the lookback's 3,601 settled rows and the 1,000 new
#              ones: its cost is looking up 4,601 keys, most of them in the
#              key segments
# For each: wall seconds, the ratio to the raw COPY (the mean of one before
# and one after the runs), retl's CPU, peak RSS, and the rows retl read.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench_lib.sh
. scripts/bench_lib.sh

rows=10000000
url="${RETL_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --url) url="$2"; shift 2 ;;
    *) echo "usage: scripts/bench_cursor.sh [--rows N] [--url postgres://...]" >&2; exit 2 ;;
  esac
done
columns="order_id,full_name,email,locale,created_at"
schema="retl_bench_c${rows}"

have=$(psql "$url" -tAc "SELECT count(*) FROM ${schema}.orders" 2>/dev/null || echo 0)
if [ "$have" != "$rows" ]; then
  echo "generating ${schema}.orders with $rows rows..."
  psql "$url" -q -v ON_ERROR_STOP=1 <<SQL
DROP SCHEMA IF EXISTS ${schema} CASCADE;
CREATE SCHEMA ${schema};
CREATE TABLE ${schema}.orders AS
SELECT g::bigint AS order_id,
       'Customer ' || g AS full_name,
       'customer' || g || '@shop.example' AS email,
       (ARRAY['en-US','da-DK','de-DE'])[1 + g % 3] AS locale,
       timestamp '2020-01-01' + g * interval '1 second' AS created_at
FROM generate_series(1, $rows) g;
ALTER TABLE ${schema}.orders ADD PRIMARY KEY (order_id);
CREATE INDEX ON ${schema}.orders (created_at);
VACUUM ANALYZE ${schema}.orders;
SQL
fi
psql "$url" -q -c "DELETE FROM ${schema}.orders WHERE order_id > $rows"

echo "building retl (release)..."
cargo build --release -q -p retl

copy() {
  psql "$url" -qc "COPY (SELECT ${columns} FROM ${schema}.orders) TO STDOUT" > /dev/null
}
copy # warm the page cache
t0=$(now); copy; t1=$(now)
raw=$(echo "$t1 - $t0" | bc -l)

bench_workdir
state="sqlite://$work/state.db"
cat > "$work/configs/activations/orders.yaml" <<YAML
source:
  connection: "$url"
  table: ${schema}.orders
  primary_key: [order_id]
  incremental: { cursor: created_at, lookback: 1h }
destination: trustpilot
first_run: skip_existing
limits: { surge: off }
mapping: { reference_number: order_id, consumer_name: full_name, consumer_email: email, locale: locale }
YAML

read -r base base_cpu base_rss base_read < <(run_retl "$state")
psql "$url" -q -v ON_ERROR_STOP=1 -c "INSERT INTO ${schema}.orders
  SELECT g, 'Customer ' || g, 'customer' || g || '@shop.example', 'en-US',
         timestamp '2020-01-01' + g * interval '1 second'
  FROM generate_series($rows + 1, $rows + 1000) g"
psql "$url" -q -c "ANALYZE ${schema}.orders"
runs=()
for _ in 1 2 3; do
  read -r cur cur_cpu cur_rss cur_read < <(run_retl "$state" --dry-run)
  runs+=("$cur $cur_cpu $cur_rss $cur_read")
done
t0=$(now); copy; t1=$(now)
raw2=$(echo "$t1 - $t0" | bc -l)
raw_mean=$(echo "($raw + $raw2) / 2" | bc -l)
psql "$url" -q -c "DELETE FROM ${schema}.orders WHERE order_id > $rows"

line() { # stage wall cpu rss_kb read note
  printf '%-10s %8.3f %7.3f %8.3f %9.1fMB %10s %s\n' "$1" "$2" "$(echo "$2 / $raw_mean" | bc -l)" \
    "$3" "$(echo "$4 / 1024" | bc -l)" "$5" "$6"
}
printf '\nrows: %d (columns %s), PostgreSQL warehouse, state %s\n' "$rows" "$columns" "${state%%\?*}"
printf 'raw COPY: %.3f s before the runs, %.3f s after; ratios to their mean %.3f s\n' "$raw" "$raw2" "$raw_mean"
printf '%-10s %8s %7s %8s %11s %10s\n' stage wall ratio cpu peak_RSS rows_read
line baseline "$base" "$base_cpu" "$base_rss" "$base_read" "(first run, skip_existing: every key into the segments)"
for r in "${runs[@]}"; do
  read -r cur cur_cpu cur_rss cur_read <<< "$r"
  line cursor "$cur" "$cur_cpu" "$cur_rss" "$cur_read" "(1,000 new rows, lookback 1h, --dry-run)"
done
