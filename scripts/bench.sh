#!/usr/bin/env bash
# Source read benchmark: retl's PostgreSQL read vs the raw COPY of the same
# columns, measured in one run on the same table. Not a test: it prints figures.
#
#   scripts/bench.sh [--rows N] [--url postgres://…] [--pg-state] [--no-peer]
#   scripts/bench.sh --diff warehouse [--rows N] [--url postgres://…]
#   scripts/bench.sh --engine duckdb [--rows N] [--memory-limit 64MB]
#   scripts/bench.sh --cursor [--rows N] [--url postgres://…]
#
# --diff warehouse runs scripts/bench_warehouse.sh instead: the diff inside the
# warehouse (source.diff: warehouse) and cursor mode, 1,000 new rows, against
# the raw COPY (default 10,000,000 rows).
#
# --engine duckdb runs scripts/bench_duckdb.sh instead: DuckDB through its
# ADBC entry point, diff: retl against diff: warehouse with 1,000 new rows
# (default 10,000,000 rows).
#
# --cursor runs scripts/bench_cursor.sh instead: cursor mode on an indexed
# created_at with a lookback of 1h after 1,000 new rows (4,601 rows read,
# 3,601 of them settled in the key segments), against the raw COPY.
#
# --pg-state keeps retl's state in a PostgreSQL schema (retl_bench_state, made
# afresh) on the same server instead of a SQLite file. --no-peer leaves the
# peer script out (it takes longest, and does not depend on retl's state).
#
# Generates retl_bench.orders with N rows (default 1,000,000) unless it already
# holds N rows, then times, one after the other:
#   raw:       psql COPY (SELECT cols FROM retl_bench.orders) TO STDOUT > /dev/null
#   retl:      the source stage alone (Arrow batches of 10,000 rows)
#   cursor_read: the same through a server-side cursor (Redshift's path)
#   adbc_read: the same through the ADBC PostgreSQL driver (adbc-driver-postgresql's wheel)
#   retl+hash: the source stage plus the diff's key and content hashing
#   baseline:  `retl run` of an activation with first_run: skip_existing (records every row)
#   incremental: `retl run` again: every row read, hashed, looked up, none new;
#              then five more, each after a raw COPY, for the median ratio
#   peer:      scripts/peer_script.py, the 30-line Python script retl must beat
#              (psycopg2, hashlib, a set of sent keys in SQLite): first run
#              (every key new, recorded) and incremental (none new)
#   cursor:    the same activation in cursor mode (source.incremental.cursor:
#              order_id, the primary key's index) after 1,000 new rows, as
#              `retl run --dry-run` (reads, diffs and maps; sending excluded)
#   incr_1000: the same 1,000 new rows found by a full scan (no cursor), as
#              `retl run --dry-run`; and by the peer script
# and prints the times, the ratios to raw, rows per second and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--cursor" ]; then
  shift
  exec scripts/bench_cursor.sh "$@"
fi
if [ "${1:-}" = "--engine" ]; then
  case "${2:-}" in
    duckdb) shift 2; exec scripts/bench_duckdb.sh "$@" ;;
    *) echo "usage: scripts/bench.sh --engine duckdb [--rows N]" >&2; exit 2 ;;
  esac
fi
if [ "${1:-}" = "--diff" ]; then
  case "${2:-}" in
    warehouse) shift 2; exec scripts/bench_warehouse.sh "$@" ;;
    retl) shift 2 ;;
    *) echo "usage: scripts/bench.sh --diff warehouse|retl [...]" >&2; exit 2 ;;
  esac
fi

rows=1000000
pg_state=0
peer=1
url="${RETL_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --url) url="$2"; shift 2 ;;
    --pg-state) pg_state=1; shift ;;
    --no-peer) peer=0; shift ;;
    *) echo "usage: scripts/bench.sh [--rows N] [--url postgres://...] [--pg-state] [--no-peer]" >&2; exit 2 ;;
  esac
done
columns="order_id,full_name,email,locale,sku"

have=$(psql "$url" -tAc "SELECT count(*) FROM retl_bench.orders" 2>/dev/null || echo 0)
if [ "$have" != "$rows" ]; then
  echo "generating retl_bench.orders with $rows rows..."
  psql "$url" -q -v ON_ERROR_STOP=1 <<SQL
DROP SCHEMA IF EXISTS retl_bench CASCADE;
CREATE SCHEMA retl_bench;
CREATE TABLE retl_bench.orders AS
SELECT g::bigint AS order_id,
       'Customer ' || g AS full_name,
       'customer' || g || '@shop.example' AS email,
       (ARRAY['en-US','da-DK','de-DE'])[1 + g % 3] AS locale,
       'SKU-' || (g % 997) AS sku,
       now() - (g || ' seconds')::interval AS ordered_at
FROM generate_series(1, $rows) g;
ALTER TABLE retl_bench.orders ADD PRIMARY KEY (order_id);
VACUUM ANALYZE retl_bench.orders;
SQL
fi

echo "building the benchmark binary (release)..."
cargo build --release -q -p retl-engine --example source_bench
bin=target/release/examples/source_bench

# Warm the table into the page cache so the first measurement is not penalised.
psql "$url" -qc "COPY (SELECT ${columns} FROM retl_bench.orders) TO STDOUT" > /dev/null

now() { date +%s.%N; }
t0=$(now)
psql "$url" -qc "COPY (SELECT ${columns} FROM retl_bench.orders) TO STDOUT" > /dev/null
t1=$(now)
raw=$(echo "$t1 - $t0" | bc -l)

measure() {
  local log
  log=$(mktemp)
  /usr/bin/time -v "$@" > "$log.out" 2> "$log"
  local secs rss
  secs=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' "$log.out")
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")
  rm -f "$log" "$log.out"
  echo "$secs $rss"
}
read -r retl retl_rss < <(measure "$bin" "$url" retl_bench.orders "$columns")
read -r hashed hashed_rss < <(measure "$bin" "$url" retl_bench.orders "$columns" --hash order_id)
read -r cursor_read cursor_rss < <(measure "$bin" "$url" retl_bench.orders "$columns" --cursor)
# The ADBC path: the PostgreSQL driver of the adbc-driver-postgresql wheel.
adbc_venv=target/adbc-venv
if [ ! -x "$adbc_venv/bin/pip" ]; then python3 -m venv "$adbc_venv"; fi
if ! find "$adbc_venv" -name 'libadbc_driver_postgresql.so' | grep -q .; then
  "$adbc_venv/bin/pip" install -q --no-deps 'adbc-driver-postgresql>=1.8'
fi
adbc_driver=$(find "$PWD/$adbc_venv" -name 'libadbc_driver_postgresql.so' | head -n1)
read -r adbc_read adbc_rss < <(measure "$bin" "$url" retl_bench.orders "$columns" --adbc "$adbc_driver")

echo "building retl (release)..."
cargo build --release -q -p retl
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/configs/destinations" "$work/configs/activations"
state="sqlite://$work/state.db"
if [ "$pg_state" = 1 ]; then
  psql "$url" -q -c "DROP SCHEMA IF EXISTS retl_bench_state CASCADE; CREATE SCHEMA retl_bench_state"
  case "$url" in *\?*) join='&' ;; *) join='?' ;; esac
  state="${url}${join}options=-c%20search_path%3Dretl_bench_state"
fi
echo "state: ${state%%\?*}"
cat > "$work/configs/destinations/trustpilot.yaml" <<YAML
type: trustpilot
auth: { api_key: bench, api_secret: bench, business_user_id: bench }
defaults: { business_unit_id: bench }
YAML
cat > "$work/configs/activations/orders.yaml" <<YAML
source: { connection: "$url", table: retl_bench.orders, primary_key: [order_id] }
destination: trustpilot
first_run: skip_existing
mapping: { reference_number: order_id, consumer_name: full_name, consumer_email: email, locale: locale, tags: sku }
YAML
run_retl() {
  local log start end
  log=$(mktemp)
  start=$(now)
  /usr/bin/time -v target/release/retl --config-dir "$work/configs" --state "$state" run orders --json > "$log.out" 2> "$log"
  end=$(now)
  echo "$(echo "$end - $start" | bc -l) $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")"
  rm -f "$log" "$log.out"
}
read -r baseline baseline_rss < <(run_retl)
read -r incremental incremental_rss < <(run_retl)

# The machine is shared: the raw COPY alone varies by a third between runs.
# So also alternate the raw COPY and the incremental run five times and take
# the median of their ratios.
alternated=()
for _ in 1 2 3 4 5; do
  t0=$(now)
  psql "$url" -qc "COPY (SELECT ${columns} FROM retl_bench.orders) TO STDOUT" > /dev/null
  t1=$(now)
  read -r again _ < <(run_retl)
  alternated+=("$(echo "$again / ($t1 - $t0)" | bc -l)")
done
alternated_median=$(printf '%s\n' "${alternated[@]}" | sort -g | sed -n 3p)
alternated_range="$(printf '%s\n' "${alternated[@]}" | sort -g | sed -n 1p)-$(printf '%s\n' "${alternated[@]}" | sort -g | sed -n 5p)"

# The peer script, on the same table.
if ! python3 -c "import psycopg2" 2>/dev/null; then
  python3 -m pip install -q psycopg2-binary 2>/dev/null ||
    python3 -m pip install -q --break-system-packages psycopg2-binary
fi
run_peer() {
  local log start end
  log=$(mktemp)
  start=$(now)
  /usr/bin/time -v python3 scripts/peer_script.py "$url" retl_bench.orders "$work/peer.db" > /dev/null 2> "$log"
  end=$(now)
  echo "$(echo "$end - $start" | bc -l) $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")"
  rm -f "$log"
}
if [ "$peer" = 1 ]; then
  read -r peer_first peer_first_rss < <(run_peer)
  read -r peer_incr peer_incr_rss < <(run_peer)
fi

# A dry run reads, diffs and maps every row and sends nothing: the figure
# for "1,000 new rows, sending excluded".
dry_run() {
  local log start end
  log=$(mktemp)
  start=$(now)
  /usr/bin/time -v target/release/retl --config-dir "$work/configs" --state "$state" run orders --dry-run --json > "$log.out" 2> "$log"
  end=$(now)
  echo "$(echo "$end - $start" | bc -l) $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log") $(sed -n 's/.*"new":\([0-9]*\).*/\1/p' "$log.out")"
  rm -f "$log" "$log.out"
}
full_scan_yaml=$(cat "$work/configs/activations/orders.yaml")

# Cursor mode: its first run is a full scan that sets the high-water mark;
# then 1,000 new rows, and a dry run reads only those.
cat > "$work/configs/activations/orders.yaml" <<YAML
source: { connection: "$url", table: retl_bench.orders, primary_key: [order_id], incremental: { cursor: order_id } }
destination: trustpilot
first_run: skip_existing
mapping: { reference_number: order_id, consumer_name: full_name, consumer_email: email, locale: locale, tags: sku }
YAML
run_retl > /dev/null
psql "$url" -q -v ON_ERROR_STOP=1 -c "INSERT INTO retl_bench.orders
  SELECT g, 'Customer ' || g, 'customer' || g || '@shop.example', 'en-US', 'SKU-1', now()
  FROM generate_series($rows + 1, $rows + 1000) g"
read -r cursor cursor_rss cursor_new < <(dry_run)

# The same 1,000 new rows found by a full scan (no cursor), and by the peer.
echo "$full_scan_yaml" > "$work/configs/activations/orders.yaml"
read -r fresh fresh_rss fresh_new < <(dry_run)
if [ "$peer" = 1 ]; then
  read -r peer_new peer_new_rss < <(run_peer)
fi
psql "$url" -q -c "DELETE FROM retl_bench.orders WHERE order_id > $rows"

line() { # stage seconds rss_kb [note]
  printf '%-11s %9.3f %8.2f %14.0f %8.1fMB %s\n' "$1" "$2" "$(echo "$2 / $raw" | bc -l)" \
    "$(echo "$rows / $2" | bc -l)" "$(echo "$3 / 1024" | bc -l)" "${4:-}"
}
printf '\nrows: %d (columns %s), state %s\n' "$rows" "$columns" "${state%%\?*}"
printf '%-11s %9s %8s %14s %10s\n' stage seconds ratio rows/s peak_RSS
printf '%-11s %9.3f %8s %14.0f %10s\n' raw_copy "$raw" 1.00 "$(echo "$rows / $raw" | bc -l)" -
line retl "$retl" "$retl_rss" "(the source stage alone)"
line retl+hash "$hashed" "$hashed_rss" "(and the diff's hashing)"
line cursor_read "$cursor_read" "$cursor_rss" "(the source stage through a cursor: source.read: cursor)"
line adbc_read "$adbc_read" "$adbc_rss" "(the source stage through the ADBC PostgreSQL driver: source.adbc)"
printf 'ADBC over the native COPY reader: %.2fx; the cursor reader over COPY: %.2fx\n' \
  "$(echo "$adbc_read / $retl" | bc -l)" "$(echo "$cursor_read / $retl" | bc -l)"
line baseline "$baseline" "$baseline_rss" "(first run, skip_existing)"
line increment "$incremental" "$incremental_rss" "(full scan, nothing new)"
printf '%-11s %9s %8.2f %14s %10s %s\n' increment - "$alternated_median" - - \
  "(median of 5 alternations with the raw COPY; range $(printf '%.2f-%.2f' "${alternated_range%-*}" "${alternated_range#*-}"))"
line incr_1000 "$fresh" "$fresh_rss" "(full scan, $fresh_new new rows, dry run)"
line cursor "$cursor" "$cursor_rss" "(cursor mode, $cursor_new new rows, dry run)"
if [ "$peer" = 1 ]; then
  line peer_first "$peer_first" "$peer_first_rss"
  line peer_incr "$peer_incr" "$peer_incr_rss"
  line peer_1000 "$peer_new" "$peer_new_rss"
  printf 'the peer script over retl: first run %.1fx, nothing new %.1fx, 1,000 new %.1fx (above 1: retl is faster)\n' \
    "$(echo "$peer_first / $baseline" | bc -l)" "$(echo "$peer_incr / $incremental" | bc -l)" \
    "$(echo "$peer_new / $fresh" | bc -l)"
fi
