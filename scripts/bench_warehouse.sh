#!/usr/bin/env bash
# The diff inside the warehouse (source.diff: warehouse) against a PostgreSQL
# warehouse, side by side with the raw COPY of the same columns, in one run.
# Not a test: it prints figures. Called by `scripts/bench.sh --diff warehouse`.
#
#   scripts/bench_warehouse.sh [--rows N] [--url postgres://…]
#
# Makes retl_bench_w<N>.orders with N rows (default 10,000,000) unless it holds N
# already, then, one after the other:
#   raw_copy:   psql COPY (SELECT cols FROM retl_bench_w<N>.orders) TO STDOUT > /dev/null
#   baseline:   `retl run`, diff: warehouse, first_run: skip_existing (the keys
#               copied into retl.orders inside the warehouse, read once for the state)
#   mark:       `retl run`, diff: retl, cursor mode (a full scan that sets the
#               high-water mark; not a figure of the issue, shown for scale)
#   then 1,000 new rows, and as `retl run --dry-run` (reads, diffs, maps; no send):
#   cursor:     cursor mode with the default diff
#   warehouse:  diff: warehouse (the anti-join; candidates looked up a batch at a time)
# For each: wall seconds, the ratio to the raw COPY, retl's CPU (user + sys)
# and its ratio to the raw COPY's wall time, peak RSS, and the rows retl read.
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
    *) echo "usage: scripts/bench_warehouse.sh [--rows N] [--url postgres://...]" >&2; exit 2 ;;
  esac
done
columns="order_id,full_name,email,locale,sku"

have=$(psql "$url" -tAc "SELECT count(*) FROM retl_bench_w${rows}.orders" 2>/dev/null || echo 0)
if [ "$have" != "$rows" ]; then
  echo "generating retl_bench_w${rows}.orders with $rows rows..."
  psql "$url" -q -v ON_ERROR_STOP=1 <<SQL
DROP SCHEMA IF EXISTS retl_bench_w${rows} CASCADE;
CREATE SCHEMA retl_bench_w${rows};
CREATE TABLE retl_bench_w${rows}.orders AS
SELECT g::bigint AS order_id,
       'Customer ' || g AS full_name,
       'customer' || g || '@shop.example' AS email,
       (ARRAY['en-US','da-DK','de-DE'])[1 + g % 3] AS locale,
       'SKU-' || (g % 997) AS sku
FROM generate_series(1, $rows) g;
ALTER TABLE retl_bench_w${rows}.orders ADD PRIMARY KEY (order_id);
VACUUM ANALYZE retl_bench_w${rows}.orders;
SQL
fi
psql "$url" -q -c "DELETE FROM retl_bench_w${rows}.orders WHERE order_id > $rows"
psql "$url" -q -c "DROP SCHEMA IF EXISTS retl_bench_keys CASCADE"

echo "building retl (release)..."
cargo build --release -q -p retl

copy() {
  psql "$url" -qc "COPY (SELECT ${columns} FROM retl_bench_w${rows}.orders) TO STDOUT" > /dev/null
}
copy # warm the page cache
t0=$(now); copy; t1=$(now)
raw=$(echo "$t1 - $t0" | bc -l)

bench_workdir
state="sqlite://$work/state.db"
activation() { # extra source keys
  cat > "$work/configs/activations/orders.yaml" <<YAML
source: { connection: "$url", table: retl_bench_w${rows}.orders, primary_key: [order_id], $1 }
destination: trustpilot
first_run: skip_existing
limits: { surge: off }
mapping: { reference_number: order_id, consumer_name: full_name, consumer_email: email, locale: locale, tags: sku }
YAML
}

activation "diff: warehouse, diff_schema: retl_bench_keys"
read -r base base_cpu base_rss base_read < <(run_retl "$state")
activation "incremental: { cursor: order_id }"
read -r mark mark_cpu mark_rss mark_read < <(run_retl "$state")
psql "$url" -q -v ON_ERROR_STOP=1 -c "INSERT INTO retl_bench_w${rows}.orders
  SELECT g, 'Customer ' || g, 'customer' || g || '@shop.example', 'en-US', 'SKU-1'
  FROM generate_series($rows + 1, $rows + 1000) g"
psql "$url" -q -c "ANALYZE retl_bench_w${rows}.orders"
read -r cur cur_cpu cur_rss cur_read < <(run_retl "$state" --dry-run)
activation "diff: warehouse, diff_schema: retl_bench_keys"
read -r wh wh_cpu wh_rss wh_read < <(run_retl "$state" --dry-run)
# The raw COPY again, after the runs (the machine is shared): the figures
# use the mean of the two.
t0=$(now); copy; t1=$(now)
raw2=$(echo "$t1 - $t0" | bc -l)
raw_mean=$(echo "($raw + $raw2) / 2" | bc -l)
psql "$url" -q -c "DELETE FROM retl_bench_w${rows}.orders WHERE order_id > $rows"

line() { # stage wall cpu rss_kb read note
  printf '%-10s %8.3f %7.3f %8.3f %7.3f %9.1fMB %10s %s\n' "$1" "$2" "$(echo "$2 / $raw_mean" | bc -l)" \
    "$3" "$(echo "$3 / $raw_mean" | bc -l)" "$(echo "$4 / 1024" | bc -l)" "$5" "$6"
}
printf '\nrows: %d (columns %s), PostgreSQL warehouse, state %s\n' "$rows" "$columns" "${state%%\?*}"
printf 'raw COPY: %.3f s before the runs, %.3f s after; ratios to their mean %.3f s\n' "$raw" "$raw2" "$raw_mean"
printf '%-10s %8s %7s %8s %7s %11s %10s\n' stage wall ratio cpu cpu/raw peak_RSS rows_read
line baseline "$base" "$base_cpu" "$base_rss" "$base_read" "(first run, skip_existing, diff: warehouse)"
line mark "$mark" "$mark_cpu" "$mark_rss" "$mark_read" "(cursor mode's first run: a full scan; for scale)"
line cursor "$cur" "$cur_cpu" "$cur_rss" "$cur_read" "(1,000 new, cursor mode, diff: retl, dry run)"
line warehouse "$wh" "$wh_cpu" "$wh_rss" "$wh_read" "(1,000 new, diff: warehouse, dry run)"
