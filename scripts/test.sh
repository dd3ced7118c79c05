#!/usr/bin/env bash
# The one test command: formatting, lints, every test. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi
locked=()
if [ "${CI:-}" = "true" ]; then
  locked=(--locked)
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# The warehouse tests talk to real databases: the PostgreSQL and MariaDB that
# run on the development and CI machines, unless these point elsewhere.
export RETL_TEST_POSTGRES_URL="${RETL_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export RETL_TEST_MYSQL_URL="${RETL_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"

# Installs Debian package $2 when command $1 is missing (what for: $3); a
# package that cannot be had is said, and its tests fail under CI=true.
apt_install() {
  local command="$1" package="$2" purpose="$3"
  if command -v "$command" >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    return 0
  fi
  echo "== installing $package ($purpose)"
  local sudo=()
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get install -y --no-install-recommends "$package" >/dev/null 2>&1 ||
    { "${sudo[@]}" apt-get update >/dev/null 2>&1 &&
      "${sudo[@]}" apt-get install -y --no-install-recommends "$package" >/dev/null 2>&1; } ||
    echo "warning: could not install $package; its checks fail under CI=true" >&2
}

# The run-log page is tested in a real browser: Debian's headless Chromium.
apt_install chromium chromium "the run-log page's browser test"

# ADBC sources are tested through the drivers their projects ship: the
# PyPI wheels of the PostgreSQL and SQLite drivers hold their libraries.
# They go into a virtualenv under target/ (nothing is installed system-wide).
adbc_venv=target/adbc-venv
if [ ! -x "$adbc_venv/bin/pip" ]; then
  echo "== installing the ADBC drivers (PyPI wheels) into $adbc_venv"
  python3 -m venv "$adbc_venv" >/dev/null 2>&1 ||
    echo "warning: python3 -m venv failed; the ADBC tests fail under CI=true" >&2
fi
if [ -x "$adbc_venv/bin/pip" ] &&
  ! find "$adbc_venv" -name 'libadbc_driver_sqlite.so' | grep -q .; then
  "$adbc_venv/bin/pip" install -q --disable-pip-version-check --no-deps \
    'adbc-driver-sqlite>=1.8' 'adbc-driver-postgresql>=1.8' >/dev/null ||
    echo "warning: could not install the ADBC driver wheels; the ADBC tests fail under CI=true" >&2
fi
RETL_TEST_ADBC_SQLITE_DRIVER="$(find "$PWD/$adbc_venv" -name 'libadbc_driver_sqlite.so' 2>/dev/null | head -n1)"
RETL_TEST_ADBC_POSTGRESQL_DRIVER="$(find "$PWD/$adbc_venv" -name 'libadbc_driver_postgresql.so' 2>/dev/null | head -n1)"
export RETL_TEST_ADBC_SQLITE_DRIVER RETL_TEST_ADBC_POSTGRESQL_DRIVER
# Snowflake's driver is tested against fakesnow's HTTP server, in a
# virtualenv of its own (its sqlglot pin differs from other stand-ins').
snow_venv=target/fakesnow-venv
if [ ! -x "$snow_venv/bin/fakesnow" ] ||
  ! find "$snow_venv" -name 'libadbc_driver_snowflake.so' | grep -q .; then
  echo "== installing fakesnow and the ADBC Snowflake driver into $snow_venv"
  { python3 -m venv "$snow_venv" &&
    "$snow_venv/bin/pip" install -q --disable-pip-version-check \
      'fakesnow[server]' 'snowflake-connector-python<4' &&
    "$snow_venv/bin/pip" install -q --disable-pip-version-check --no-deps \
      'adbc-driver-snowflake==1.11.*'; } >/dev/null ||
    echo "warning: could not install fakesnow or the Snowflake driver; the Snowflake test fails under CI=true" >&2
fi
if [ -x "$snow_venv/bin/fakesnow" ]; then export RETL_TEST_FAKESNOW="$PWD/$snow_venv/bin/fakesnow"; fi
RETL_TEST_ADBC_SNOWFLAKE_DRIVER="$(find "$PWD/$snow_venv" -name 'libadbc_driver_snowflake.so' 2>/dev/null | head -n1)"
if [ -n "$RETL_TEST_ADBC_SNOWFLAKE_DRIVER" ]; then export RETL_TEST_ADBC_SNOWFLAKE_DRIVER; fi
if [ -z "$RETL_TEST_ADBC_SQLITE_DRIVER" ]; then unset RETL_TEST_ADBC_SQLITE_DRIVER; fi
if [ -z "$RETL_TEST_ADBC_POSTGRESQL_DRIVER" ]; then unset RETL_TEST_ADBC_POSTGRESQL_DRIVER; fi

# Databricks' dialect (Spark SQL) is tested against a local Spark Connect
# server: pyspark's own jars, run by its spark-submit on the machine's Java
# 17, read through adbc-driver-spark. Both into a virtualenv under target/.
spark_venv=target/spark-venv
if [ ! -x "$spark_venv/bin/pip" ] ||
  ! find "$spark_venv" -name 'libadbc_driver_spark.so' | grep -q . ||
  ! find "$spark_venv" -path '*pyspark/bin/spark-submit' | grep -q .; then
  echo "== installing pyspark and adbc-driver-spark into $spark_venv"
  { python3 -m venv "$spark_venv" &&
    "$spark_venv/bin/pip" install -q --disable-pip-version-check --no-deps \
      'pyspark>=4,<5' 'adbc-driver-spark==0.3.*'; } >/dev/null ||
    echo "warning: could not install pyspark or adbc-driver-spark; the Spark tests fail under CI=true" >&2
fi
RETL_TEST_SPARK_HOME="$(find "$PWD/$spark_venv" -path '*pyspark/bin/spark-submit' 2>/dev/null | head -n1)"
RETL_TEST_ADBC_SPARK_DRIVER="$(find "$PWD/$spark_venv" -name 'libadbc_driver_spark.so' 2>/dev/null | head -n1)"
if [ -n "$RETL_TEST_SPARK_HOME" ] && [ -n "$RETL_TEST_ADBC_SPARK_DRIVER" ] && command -v java >/dev/null 2>&1; then
  RETL_TEST_SPARK_HOME="$(dirname "$(dirname "$RETL_TEST_SPARK_HOME")")"
  export RETL_TEST_SPARK_HOME RETL_TEST_ADBC_SPARK_DRIVER
else
  unset RETL_TEST_SPARK_HOME RETL_TEST_ADBC_SPARK_DRIVER
fi

# DuckDB through its own ADBC entry point (duckdb_adbc_init): the plain
# libduckdb.so of npm's @duckdb/node-bindings-linux-x64 (the PyPI wheel's is
# a Python extension). Pinned, so that test files are never written by a
# newer DuckDB than the one that reads them.
duckdb_version=1.5.6-r.1
duckdb_dir=target/duckdb-$duckdb_version
if [ ! -f "$duckdb_dir/package/libduckdb.so" ]; then
  echo "== fetching libduckdb.so (npm @duckdb/node-bindings-linux-x64@$duckdb_version) into $duckdb_dir"
  mkdir -p "$duckdb_dir"
  { (cd "$duckdb_dir" && npm pack --silent "@duckdb/node-bindings-linux-x64@$duckdb_version" >/dev/null &&
    tar xzf duckdb-node-bindings-linux-x64-*.tgz package/libduckdb.so); } >/dev/null 2>&1 ||
    echo "warning: could not fetch libduckdb.so; the DuckDB tests fail under CI=true" >&2
fi
if [ -f "$duckdb_dir/package/libduckdb.so" ]; then
  export RETL_TEST_DUCKDB_LIBRARY="$PWD/$duckdb_dir/package/libduckdb.so"
fi

# The deployment files are checked by the tools that read them: promtool
# (Debian's prometheus package) and systemd-analyze.
apt_install promtool prometheus "promtool, for deploy/prometheus"
apt_install systemd-analyze systemd "systemd-analyze, for deploy/retl.service"
echo "== deploy/: promtool check rules, promtool test rules, systemd-analyze verify"
for tool in promtool systemd-analyze; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    if [ "${CI:-}" = "true" ]; then
      echo "error: $tool is missing: the deployment files cannot be checked" >&2
      exit 1
    fi
    echo "warning: $tool is missing: skipping its check (it fails under CI=true)" >&2
  fi
done
if command -v promtool >/dev/null 2>&1; then
  (cd deploy/prometheus && promtool check rules retl-rules.yml >/dev/null && promtool test rules retl-rules.test.yml >/dev/null)
fi
if command -v systemd-analyze >/dev/null 2>&1; then
  cargo build "${locked[@]}" --quiet --bin retl
  unit_dir="$(mktemp -d)"
  sed "s#/usr/local/bin/retl#$PWD/target/debug/retl#" deploy/retl.service >"$unit_dir/retl.service"
  said="$(systemd-analyze verify "$unit_dir/retl.service" 2>&1)" || { echo "$said" >&2; exit 1; }
  if [ -n "$said" ]; then
    echo "systemd-analyze verify deploy/retl.service warns:" >&2
    echo "$said" >&2
    exit 1
  fi
  rm -rf "$unit_dir"
fi

# dbt models as sources are tested with real dbt: dbt-core and dbt-postgres
# from their wheels (newer dbt-core fetches a parser from outside the
# registry at install time).
dbt_venv=target/dbt-venv
if [ ! -x "$dbt_venv/bin/dbt" ]; then
  echo "== installing dbt-core and dbt-postgres into $dbt_venv"
  { python3 -m venv "$dbt_venv" &&
    "$dbt_venv/bin/pip" install -q --disable-pip-version-check \
      'dbt-core>=1.9,<1.11' 'dbt-postgres>=1.9,<1.10'; } >/dev/null ||
    echo "warning: could not install dbt; the dbt test fails under CI=true" >&2
fi
if [ -x "$dbt_venv/bin/dbt" ]; then export RETL_TEST_DBT="$PWD/$dbt_venv/bin/dbt"; fi

echo "== docs: every backticked path and Rust name exists"
python3 scripts/check_docs.py
echo "== no import cycle between files"
python3 scripts/import_cycles.py
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy "${locked[@]}" --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test "${locked[@]}" --workspace
