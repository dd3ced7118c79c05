#!/usr/bin/env bash
# A columnar engine through ADBC: DuckDB (its own libduckdb.so, entry point
# duckdb_adbc_init), diff: retl against diff: warehouse, in one run. Not a
# test: it prints figures. Called by `scripts/bench.sh --engine duckdb`.
#
#   scripts/bench_duckdb.sh [--rows N] [--memory-limit 64MB]
#
# DuckDB runs inside retl's process: its memory is retl's RSS. --memory-limit
# sets DuckDB's own memory_limit (a database option the driver passes to
# DuckDB's configuration), which bounds it (DuckDB spills to disk past it).
#
# Makes target/bench/duckdb_<N>.duckdb with sales.orders of N rows (default
# 10,000,000) unless it holds N already, then, one after the other:
#   retl_base:  `retl run`, diff: retl, first_run: skip_existing (its state's baseline)
#   wh_base:    `retl run`, diff: warehouse, first_run: skip_existing (another
#               state: the keys copied into retl's key table inside DuckDB)
#   then 1,000 new rows, and as `retl run --dry-run` (reads, diffs, maps; no send):
#   retl:       diff: retl, a full scan (every row crosses into retl)
#   warehouse:  diff: warehouse (the anti-join inside DuckDB; only new rows cross)
# For each: wall seconds, retl's CPU (user + sys), peak RSS, rows crossing
# (the rows retl read), and the warehouse run's wall time as a ratio of the
# full scan's.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench_lib.sh
. scripts/bench_lib.sh

rows=10000000
memory_limit=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --memory-limit) memory_limit="$2"; shift 2 ;;
    *) echo "usage: scripts/bench_duckdb.sh [--rows N] [--memory-limit 64MB]" >&2; exit 2 ;;
  esac
done
limit_option=""
if [ -n "$memory_limit" ]; then limit_option=", memory_limit: \"$memory_limit\""; fi

library="$(find "$PWD/target" -path '*duckdb-*/package/libduckdb.so' 2>/dev/null | head -n1)"
if [ -z "$library" ]; then
  echo "libduckdb.so not found under target/: run scripts/test.sh once (it fetches it)" >&2
  exit 1
fi
# The data is written through the same library, by Python's ADBC driver
# manager (a virtualenv of the bench's own).
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check adbc-driver-manager pyarrow
fi
mkdir -p target/bench
db="$PWD/target/bench/duckdb_${rows}.duckdb"
duck() { # SQL statements, one per argument; prints the last one's first cell
  "$venv/bin/python" - "$library" "$db" "$@" <<'PY'
import sys
import adbc_driver_manager.dbapi as dbapi
library, path, statements = sys.argv[1], sys.argv[2], sys.argv[3:]
with dbapi.connect(driver=library, entrypoint="duckdb_adbc_init", db_kwargs={"path": path}) as conn:
    cur = conn.cursor()
    for sql in statements:
        cur.execute(sql)
    row = cur.fetchone() if cur.description else None
    conn.commit()
    if row:
        print(row[0])
PY
}
have=$(duck "SELECT count(*) FROM sales.orders" 2>/dev/null || echo 0)
if [ "$have" != "$rows" ]; then
  echo "generating sales.orders with $rows rows in $db..."
  rm -f "$db" "$db.wal"
  duck "CREATE SCHEMA sales" "CREATE TABLE sales.orders AS
    SELECT g AS order_id, 'Customer ' || g AS full_name, 'customer' || g || '@shop.example' AS email,
           (['en-US','da-DK','de-DE'])[1 + g % 3] AS locale, 'SKU-' || (g % 997) AS sku
    FROM range(1, $rows + 1) t(g)" > /dev/null
fi
duck "DELETE FROM sales.orders WHERE order_id > $rows" "DROP SCHEMA IF EXISTS retl CASCADE" > /dev/null

echo "building retl (release)..."
cargo build --release -q -p retl

bench_workdir
activation() { # the diff
  cat > "$work/configs/activations/orders.yaml" <<YAML
source:
  adbc: { driver: "$library", entrypoint: duckdb_adbc_init, options: { path: "$db"$limit_option } }
  table: sales.orders
  primary_key: [order_id]
  diff: $1
destination: trustpilot
first_run: skip_existing
limits: { surge: off }
mapping: { reference_number: order_id, consumer_name: full_name, consumer_email: email, locale: locale, tags: sku }
YAML
}

retl_state="sqlite://$work/retl.db"
wh_state="sqlite://$work/warehouse.db"
activation retl
read -r rb rb_cpu rb_rss rb_read < <(run_retl "$retl_state")
activation warehouse
read -r wb wb_cpu wb_rss wb_read < <(run_retl "$wh_state")
duck "INSERT INTO sales.orders SELECT g, 'Customer ' || g, 'customer' || g || '@shop.example', 'en-US', 'SKU-1'
  FROM range($rows + 1, $rows + 1001) t(g)" > /dev/null
activation retl
read -r r r_cpu r_rss r_read < <(run_retl "$retl_state" --dry-run)
activation warehouse
read -r w w_cpu w_rss w_read < <(run_retl "$wh_state" --dry-run)
duck "DELETE FROM sales.orders WHERE order_id > $rows" > /dev/null

line() { # stage wall cpu rss_kb read note
  printf '%-10s %8.3f %8.3f %9.1fMB %12s  %s\n' "$1" "$2" "$3" "$(echo "$4 / 1024" | bc -l)" "$5" "$6"
}
printf '\nrows: %d, DuckDB %s through its ADBC entry point, memory_limit %s; state: SQLite\n' "$rows" "$(basename "$(dirname "$(dirname "$library")")")" "${memory_limit:-DuckDB default}"
printf '%-10s %8s %8s %11s %12s\n' stage wall cpu peak_RSS rows_crossing
line retl_base "$rb" "$rb_cpu" "$rb_rss" "$rb_read" "(first run, diff: retl, skip_existing)"
line wh_base "$wb" "$wb_cpu" "$wb_rss" "$wb_read" "(first run, diff: warehouse, skip_existing: the keys copied inside DuckDB)"
line retl "$r" "$r_cpu" "$r_rss" "$r_read" "(1,000 new rows, diff: retl, --dry-run)"
line warehouse "$w" "$w_cpu" "$w_rss" "$w_read" "(1,000 new rows, diff: warehouse, --dry-run)"
printf 'diff: warehouse / diff: retl, wall: %.3f\n' "$(echo "$w / $r" | bc -l)"
