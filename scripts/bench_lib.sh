# What the bench scripts share (sourced by scripts/bench_*.sh, not run):
# the clock, the work folder with the bench's Trustpilot destination, and
# one timed `retl run`.

now() { date +%s.%N; }

# Makes $work, a temporary folder (removed at exit) with configs/ and the
# destination every bench sends to (nothing is sent: the runs are dry, or
# first runs that record the rows already there).
bench_workdir() {
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/configs/destinations" "$work/configs/activations"
  cat > "$work/configs/destinations/trustpilot.yaml" <<YAML
type: trustpilot
auth: { api_key: bench, api_secret: bench, business_user_id: bench }
defaults: { business_unit_id: bench }
YAML
}

# `retl run orders` on the state $1 with the flags after it; prints wall
# seconds, CPU seconds (user + sys), peak RSS (kB) and the rows it read.
run_retl() {
  local log start end user sys state="$1"
  shift
  log=$(mktemp)
  start=$(now)
  /usr/bin/time -v target/release/retl --config-dir "$work/configs" --state "$state" run orders --json "$@" > "$log.out" 2> "$log" || true
  end=$(now)
  user=$(sed -n 's/.*User time (seconds): //p' "$log")
  sys=$(sed -n 's/.*System time (seconds): //p' "$log")
  echo "$(echo "$end - $start" | bc -l) $(echo "$user + $sys" | bc -l) $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log") $(sed -n 's/.*"read":\([0-9]*\).*/\1/p' "$log.out")"
  rm -f "$log" "$log.out"
}
