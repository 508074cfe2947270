#!/usr/bin/env bash
# Runs the paasd unit *as the NixOS module renders it* (nix/eval/example.nix) under a real
# systemd (254, which knows Type=notify-reload) in a booted container, with a stand-in daemon,
# and checks the sandbox, credentials, state directory and reload (test.sh). The unit file, the
# spec and the D-Bus policy are built offline from the module (see nix/eval/check.sh).
#
# Needs root, an assembled evaluation tree (PAAS_NIX_EVAL_TREE, see docs/nixos.md) and the
# system-test harness: SYSTEST_RUNNER (default ../shared/systest/run-in-systemd.sh from the
# repository root).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
: "${PAAS_NIX_EVAL_TREE:?set PAAS_NIX_EVAL_TREE to an assembled evaluation tree}"
TREE=$(cd "$PAAS_NIX_EVAL_TREE" && pwd)
RUNNER=${SYSTEST_RUNNER:-$REPO/../shared/systest/run-in-systemd.sh}

H="(import $REPO/nix/eval/lib.nix { tree = $TREE; repo = $REPO; })"
build() { nix-build --option substituters '' --no-out-link -E "let h = $H; in $1" 2> /dev/null | tail -n 1; }
unit=$(build 'h.example.config.systemd.units."paasd.service".unit')/paasd.service
spec=$(build 'h.example.config.environment.etc."paas/spec.json".source')
policy=$(build 'builtins.head (builtins.filter (p: (p.name or "") == "paasd-dbus-policy") h.example.config.services.dbus.packages)')

DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
# The unit as rendered, except what points into the Nix store of the evaluation: the stand-in
# replaces the package's paasd, the store-path environment (PATH, locale, tz) is dropped.
sed -e 's|^ExecStart=.*/bin/paasd'"'"'|ExecStart='"'"'/usr/local/bin/paasd'"'"'|' \
  -e '/^Environment=.*\/nix\/store/d' -e '/^X-Reload-Triggers=/d' "$unit" > "$DIR/paasd.service"
grep -q "^ExecStart='/usr/local/bin/paasd' '--spec' '/etc/paas/spec.json'" "$DIR/paasd.service"
install -m 0755 "$HERE/paasd-standin" "$DIR/paasd"
install -m 0755 "$HERE/test.sh" "$DIR/test.sh"
mkdir -p "$DIR/rootfs/etc/static/paas" "$DIR/rootfs/usr/share/dbus-1/system.d" \
  "$DIR/rootfs/etc/systemd/system/paasd.service.d"
# as on NixOS: /etc/paas/spec.json -> /etc/static/paas/spec.json -> the file
install -m 0444 "$spec" "$DIR/rootfs/etc/static/paas/spec.json"
mkdir -p "$DIR/rootfs/etc/paas"
ln -s /etc/static/paas/spec.json "$DIR/rootfs/etc/paas/spec.json"
install -m 0644 "$policy/share/dbus-1/system.d/org.paasd.Paasd1.conf" "$DIR/rootfs/usr/share/dbus-1/system.d/"
# the stand-in is a shell script whose notifications come from systemd-notify, a child process
printf '[Service]\nNotifyAccess=all\n' > "$DIR/rootfs/etc/systemd/system/paasd.service.d/standin.conf"

# a helper that owns the bus name, to exercise the D-Bus policy (needs a C compiler and libdbus-1-dev)
if cc -O2 -o "$DIR/bus-owner" "$HERE/bus-owner.c" $(pkg-config --cflags --libs dbus-1 2> /dev/null) 2> /dev/null; then
  echo "built the bus-owner helper: the D-Bus policy is exercised"
else
  echo "no C compiler or libdbus-1-dev: the D-Bus policy is only loaded, not exercised"
fi

echo "unit under test:"
cat "$DIR/paasd.service"
SYSTEST_SYSTEMD=${SYSTEST_SYSTEMD:-backports} "$RUNNER" "$DIR"
