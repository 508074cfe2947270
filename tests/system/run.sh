#!/bin/bash
# tests/system/run.sh [--release]
#
# System test of paasd under a real systemd as PID 1 (systemd-nspawn, Debian 12 with
# bookworm-backports' systemd 254, which knows Type=notify-reload): builds paasd, paasctl and
# paas-double, stages the shipped unit (dist/paasd.service), sysusers file and D-Bus policy, the
# LLDAP test double as a second unit, and runs tests/system/paasd/test.sh inside.
#
# Needs root, debootstrap and systemd-container (installed on demand by run-in-systemd.sh), and
# the shared contracts (../shared/contracts, or $PAAS_CONTRACTS) for the LLDAP double.
# Environment: PAASD_SYSTEST_IDLE_SECONDS (default 60: the idle CPU/RSS measurement),
# SYSTEST_* (see run-in-systemd.sh), CARGO (default cargo).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PROFILE=debug
CARGO_FLAGS=()
if [ "${1:-}" = --release ]; then PROFILE=release; CARGO_FLAGS=(--release); fi
CONTRACTS=${PAAS_CONTRACTS:-$REPO/../shared/contracts}
[ -f "$CONTRACTS/lldap/schema.graphql" ] || { echo "run.sh: no contracts at $CONTRACTS" >&2; exit 2; }

(cd "$REPO" && ${CARGO:-cargo} build "${CARGO_FLAGS[@]}" --bin paasd --bin paasctl && ${CARGO:-cargo} build "${CARGO_FLAGS[@]}" -p paas-doubles --bin paas-double)
TARGET=$(cd "$REPO" && ${CARGO:-cargo} metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

STAGE=$(mktemp -d /tmp/paasd-systest.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
chmod 755 "$STAGE"
for b in paasd paasctl paas-double; do cp "$TARGET/$PROFILE/$b" "$STAGE/"; done
cp "$REPO/dist/paasd.service" "$HERE/paasd/paas-double-lldap.service" "$HERE/paasd/test.sh" "$STAGE/"
R=$STAGE/rootfs
install -d -m 0755 "$R/etc/paasd/users" "$R/etc/sysusers.d" "$R/usr/share/dbus-1/system.d" \
  "$R/etc/systemd/system/paasd.service.d" "$R/usr/local/share/paasd-systest"
install -m 0644 "$REPO/dist/paasd.sysusers" "$R/etc/sysusers.d/paasd.conf"
install -m 0644 "$REPO/dist/org.paasd.Paasd1.conf" "$R/usr/share/dbus-1/system.d/"
install -m 0644 "$HERE/paasd/credentials.conf" "$R/etc/systemd/system/paasd.service.d/"
cp -a "$CONTRACTS" "$R/usr/local/share/paas-contracts"
# Secrets: random per run, root-only; the test greps the journal for them.
umask 077
head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$R/etc/paasd/lldap-admin-password"
echo "alice-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')" > "$R/etc/paasd/users/alice"
echo "bob-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')" > "$R/etc/paasd/users/bob"
umask 022
echo "${PAASD_SYSTEST_IDLE_SECONDS:-60}" > "$R/usr/local/share/paasd-systest/idle-seconds"
echo "$PROFILE" > "$R/usr/local/share/paasd-systest/profile"

SYSTEST_SYSTEMD=${SYSTEST_SYSTEMD:-backports} SYSTEST_TIMEOUT=${SYSTEST_TIMEOUT:-600} \
  "$HERE/run-in-systemd.sh" "$STAGE"
