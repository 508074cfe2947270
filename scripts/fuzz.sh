#!/usr/bin/env bash
# Runs each cargo-fuzz target for SECONDS (default 30): spec_parse, plan_converges and
# accounts_converge.
# Needs cargo-fuzz and a nightly toolchain; without them it says why and exits 0.
# Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
secs="${1:-30}"

skip() { echo "fuzzing skipped: $*"; exit 0; }
command -v cargo >/dev/null 2>&1 || skip "cargo is not installed"
cargo fuzz --help >/dev/null 2>&1 || skip "cargo-fuzz is not installed (cargo install cargo-fuzz)"
cargo +nightly --version >/dev/null 2>&1 || skip "no nightly toolchain (rustup toolchain install nightly)"

status=0
for target in spec_parse plan_converges accounts_converge; do
  echo "=== fuzz $target for ${secs}s ==="
  # Work on a copy of the committed seed corpus, so a run does not add files to the repository.
  work="$(mktemp -d)"
  cp fuzz/corpus/"$target"/* "$work"/ 2>/dev/null || true
  log="$work.log"
  set +e
  (cd fuzz && cargo +nightly fuzz run "$target" "$work" -- \
      -max_total_time="$secs" -print_final_stats=1) >"$log" 2>&1
  rc=$?
  set -e
  grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY)|panicked at" "$log" || true
  if [ "$rc" != 0 ]; then
    tail -n 40 "$log"
    echo "fuzz $target: FAILURE (exit $rc; log: $log; reproducer in fuzz/artifacts/$target/)"
    status=1
  else
    echo "fuzz $target: no finding in ${secs}s"
  fi
done
exit $status
