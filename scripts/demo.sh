#!/usr/bin/env bash
# The main job, as a demo on any Debian machine: starts a SIMULATED LLDAP (the project's LLDAP test
# double, GraphQL + LDAP on loopback, checked against LLDAP's schema.graphql) and runs
#   paasctl validate → plan → apply → apply again (no change) → plan (empty)
# on examples/spec.json. Against a real LLDAP, run paasctl yourself (see README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

echo "### building paasctl and the LLDAP test double (release)"
cargo build --release -q -p paasd -p paas-doubles
bin=target/release

work=$(mktemp -d)
cleanup() { [ -n "${double_pid:-}" ] && kill "$double_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
umask 077
mkdir -p "$work/secrets" "$work/state"
# Demo passwords, generated fresh; files are 0600 as paasd requires.
for f in lldap-admin-password user-alice user-bob; do
  head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$work/secrets/$f"
done

echo "### starting the SIMULATED LLDAP on loopback (not a real LLDAP server)"
"$bin/paas-double" lldap --http 127.0.0.1:0 --ldap 127.0.0.1:0 \
  --admin-password-file "$work/secrets/lldap-admin-password" --port-file "$work/ports.json" \
  2> "$work/double.log" &
double_pid=$!
for _ in $(seq 100); do [ -s "$work/ports.json" ] && break; sleep 0.05; done
[ -s "$work/ports.json" ] || { cat "$work/double.log" >&2; echo "the double did not start" >&2; exit 1; }
http_url=$(grep -o '"httpUrl": *"[^"]*"' "$work/ports.json" | sed 's/.*: *"\(.*\)"/\1/')
ldap_url=$(grep -o '"ldapUrl": *"[^"]*"' "$work/ports.json" | sed 's/.*: *"\(.*\)"/\1/')
echo "    GraphQL: $http_url/api/graphql   LDAP: $ldap_url"

# examples/spec.json with the double's ports and this demo's secret files.
sed -e "s#http://127.0.0.1:17170#$http_url#" -e "s#ldap://127.0.0.1:3890#$ldap_url#" \
    -e "s#/run/credentials/paasd.service/#$work/secrets/#g" examples/spec.json > "$work/spec.json"

run() { echo; echo "\$ paasctl $*"; "$bin/paasctl" "$@"; }
run validate --spec "$work/spec.json"
set +e
run plan --spec "$work/spec.json" --state-dir "$work/state" --detailed-exitcode; echo "(exit $?: 2 = changes pending)"
set -e
run apply --spec "$work/spec.json" --state-dir "$work/state"
run apply --spec "$work/spec.json" --state-dir "$work/state" --json | grep -E '^  "(created|updated|deleted|unchanged|failed)"|"(requests|ldapBinds)"'
run plan --spec "$work/spec.json" --state-dir "$work/state" --detailed-exitcode
echo
echo "### what the simulated LLDAP saw (requests per endpoint, GraphQL operations):"
curl -s "$http_url/__double/stats" | tr -d '\n' | grep -o '"requests": *{[^}]*}' || true
echo
echo "### done: LLDAP (simulated) matches examples/spec.json; the second apply changed nothing."
