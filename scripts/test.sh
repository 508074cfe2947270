#!/usr/bin/env bash
# The test suite: formatting, lints, unit + integration tests (LLDAP double checked against the
# vendor contracts, real OpenLDAP slapd, end-to-end paasctl), and a parse of every .nix file.
# Usage: scripts/test.sh            (from the repository root; installs what is missing as root)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=never

bash scripts/install-deps.sh

if [ -z "${PAAS_CONTRACTS:-}" ] && [ ! -d ../shared/contracts ]; then
  echo "test.sh: the vendor API contracts are missing: put them at ../shared/contracts or set PAAS_CONTRACTS" >&2
  exit 1
fi

step() { echo; echo "=== $* ==="; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "nix-instantiate --parse on every .nix file"
n=0
while IFS= read -r -d '' f; do
  nix-instantiate --parse "$f" >/dev/null || { echo "parse error: $f" >&2; exit 1; }
  n=$((n + 1))
done < <(find . -name '*.nix' -not -path './target/*' -print0)
echo "$n .nix files parse"

step "cargo test --workspace"
cargo test --workspace --all-targets 2>&1 | tee target/test-output.log

step "system test: paasd under a real systemd as PID 1 (systemd-nspawn, systemd 254)"
if [ "$(id -u)" = 0 ]; then
  PAASD_SYSTEST_IDLE_SECONDS=${PAASD_SYSTEST_IDLE_SECONDS:-10} bash tests/system/run.sh 2>&1 | tee target/systest-output.log
  sys_pass=$(grep -c '^PASS ' target/systest-output.log || true)
  sys_fail=$(grep -c '^FAIL ' target/systest-output.log || true)
else
  echo "system test skipped: it boots a container and needs root"
  sys_pass=0; sys_fail=0
fi

step "summary"
grep -E "^test result:" target/test-output.log | awk -v sp="$sys_pass" -v sf="$sys_fail" \
  '{p+=$4; f+=$6} END {printf "%d passed, %d failed\n", p+sp, f+sf}'
