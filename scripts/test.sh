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

# The run-log page is tested in a real browser: Debian's headless Chromium.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "== installing chromium (for the run-log page's browser test)"
  sudo=()
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 ||
    { "${sudo[@]}" apt-get update >/dev/null 2>&1 &&
      "${sudo[@]}" apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; } ||
    echo "warning: could not install chromium; the browser test fails under CI=true" >&2
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy "${locked[@]}" --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test "${locked[@]}" --workspace
