#!/bin/bash
# Runs inside the booted test system (see run.sh): the unit rendered by the NixOS module, with
# the stand-in daemon, under a real systemd.
set -u
fail=0
check() { if eval "$2"; then echo "PASS $1"; else echo "FAIL $1"; fail=1; fi; }
echo "--- $(systemctl --version | head -1)"

# what NixOS creates: the static system user and group, the secrets (outside the store)
useradd --system --user-group --no-create-home --shell /usr/sbin/nologin paasd
groupadd --system wheel 2>/dev/null || true
install -d -m 0755 /run/secrets /run/secrets/paas
printf %s 'lldap-admin-Secret-1' > /run/secrets/lldap-admin-password
printf %s 'alice-Secret-2' > /run/secrets/paas/alice
printf %s 'bob-Secret-3' > /run/secrets/paas/bob
chmod 0400 /run/secrets/lldap-admin-password /run/secrets/paas/*
systemctl daemon-reload

echo "--- systemd-analyze verify"
systemd-analyze verify paasd.service 2>&1 | grep -v -e '/nix/store' -e 'Ignoring' || true
check "unit file has no unknown directive" '! systemd-analyze verify paasd.service 2>&1 | grep -q -i -e "unknown key" -e "unknown lvalue" -e "failed to parse"'

systemctl start paasd.service
sleep 1
echo "--- the stand-in's report"
journalctl -u paasd.service -o cat --no-pager | grep standin:
check "paasd active"          '[ "$(systemctl is-active paasd.service)" = active ]'
check "Type is notify-reload" '[ "$(systemctl show -p Type --value paasd.service)" = notify-reload ]'
check "runs as paasd"         'journalctl -u paasd.service -o cat --no-pager | grep -q "uid=paasd gid=paasd"'
check "every credential the spec names is readable by paasd" \
  '! journalctl -u paasd.service -o cat --no-pager | grep -q "credential MISSING" &&
   [ "$(journalctl -u paasd.service -o cat --no-pager | grep -c "credential ok")" -ge 3 ]'
# systemd gives the service user access through an ACL: the mode bits show 0440 root:root (0400 on
# older versions), never readable by others
check "credentials: no access for others (mode bits)" \
  '! journalctl -u paasd.service -o cat --no-pager | grep "credential ok" | grep -v -q -E "mode=4[04]0 "'
check "credentials: another user cannot read them" \
  '! runuser -u nobody -- cat /run/credentials/paasd.service/user-alice > /dev/null 2>&1'
check "spec readable through the /etc/static symlink" 'journalctl -u paasd.service -o cat --no-pager | grep -q "spec readable=yes"'
check "/etc is read-only (ProtectSystem=strict)" 'journalctl -u paasd.service -o cat --no-pager | grep -q "write /etc=no"'
check "/root is hidden (ProtectHome)"            'journalctl -u paasd.service -o cat --no-pager | grep -q "read /root=no"'
check "state dir writable"                       'journalctl -u paasd.service -o cat --no-pager | grep -q "write state=yes"'
check "state dir 0700 paasd"  '[ "$(stat -c "%a %U" /var/lib/paasd)" = "700 paasd" ]'
pid=$(systemctl show -p MainPID --value paasd.service)
systemctl reload paasd.service
check "reload completes, MainPID unchanged" '[ "$(systemctl show -p MainPID --value paasd.service)" = "$pid" ] &&
   systemctl status paasd.service --no-pager | grep -q "reloaded 1 times"'
check "no secret in the journal" '! journalctl -b -o verbose --no-pager | grep -q -e Secret-1 -e Secret-2 -e Secret-3'
# dbus-daemon read the policy when it appeared, before the paasd user and the wheel group existed
# ("Unknown username"): reload it now and look only at what it says from then on
t0=$(date +%s)
sleep 1
busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig
sleep 0.5
echo "--- dbus-daemon's log since the reload"
journalctl -b -u dbus.service -o cat --no-pager --since "@$t0"
check "D-Bus policy loaded without complaint" \
  'journalctl -b -u dbus.service -o cat --no-pager --since "@$t0" | grep -q "Reloaded configuration" &&
   ! journalctl -b -u dbus.service -o cat --no-pager --since "@$t0" | grep -i -E "paasd|wheel|error|unknown"'
if [ -x /usr/local/bin/bus-owner ]; then
  echo "--- the D-Bus policy at work (services.paas.adminGroup = wheel)"
  useradd --no-create-home --groups wheel walter
  useradd --no-create-home eve
  call() { dbus-send --system --print-reply --dest=org.paasd.Paasd1 /org/paasd/Paasd1 org.paasd.Paasd1.GetStatus; }
  runuser -u eve -- bus-owner org.paasd.Paasd1; rc=$?
  check "a user other than paasd may not own org.paasd.Paasd1" '[ $rc = 3 ]'
  runuser -u paasd -- bus-owner org.paasd.Paasd1 > /tmp/owner.out 2>&1 &
  owner=$!
  for _ in $(seq 50); do grep -q owned /tmp/owner.out && break; sleep 0.1; done
  check "paasd may own org.paasd.Paasd1" 'grep -q "owned org.paasd.Paasd1" /tmp/owner.out'
  check "root may call it" 'call > /dev/null'
  check "a member of wheel may call it" 'runuser -u walter -- bash -c "$(declare -f call); call" > /dev/null'
  runuser -u eve -- bash -c "$(declare -f call); call" > /tmp/eve.out 2>&1; rc=$?
  cat /tmp/eve.out
  check "anyone else is denied" '[ $rc != 0 ] && grep -q AccessDenied /tmp/eve.out'
  check "... introspection included" \
    '! runuser -u eve -- dbus-send --system --print-reply --dest=org.paasd.Paasd1 /org/paasd/Paasd1 org.freedesktop.DBus.Introspectable.Introspect > /dev/null 2>&1'
  kill "$owner"
fi

echo "--- systemd-analyze security paasd.service"
systemd-analyze security paasd.service --no-pager 2>&1 | tail -n 1
systemctl stop paasd.service
check "stops cleanly" '[ "$(systemctl show -p Result --value paasd.service)" = success ]'
exit $fail
