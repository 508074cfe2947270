#!/bin/bash
# System test of paasd under a real systemd (PID 1), run inside the guest by run-in-systemd.sh.
# Prints PASS/FAIL lines and MEASURE lines; exits 1 if any check failed.
set -u
fail=0
check() { if eval "$2"; then echo "PASS $1"; else echo "FAIL $1"; fail=1; fi; }
note() { echo "--- $*"; }
ADMIN_PW=$(cat /etc/paasd/lldap-admin-password)
ALICE_PW=$(cat /etc/paasd/users/alice)
IDLE_SECONDS=$(cat /usr/local/share/paasd-systest/idle-seconds 2>/dev/null || echo 60)
PROFILE=$(cat /usr/local/share/paasd-systest/profile 2>/dev/null || echo debug)
note "pid1=$(cat /proc/1/comm) $(systemctl --version | head -1) virt=$(systemd-detect-virt)"

# --- host setup as a package would do it: users, groups, bus policy --------------------------
systemd-sysusers
useradd -m -s /bin/bash bob          # an ordinary user: denied
useradd -m -s /bin/bash -G paas-admin carol   # in the admin group: admitted
systemctl reload dbus

# --- the spec as NixOS lays it out -----------------------------------------------------------
# /etc/paas/spec.json -> /etc/static/paas/spec.json; /etc/static -> /nix/store/<g>-etc;
# /nix/store/<g>-etc/paas/spec.json -> /nix/store/<g>-spec.json
spec() {   # spec EXTRA_USERS...  (alice and bob always, plus the given ones)
  local extra="" u
  for u in "$@"; do
    extra="$extra, \"$u\": { \"email\": \"$u@example.com\", \"groups\": [\"family\"] }"
  done
  cat <<JSON
{
  "version": 1,
  "lldap": {
    "url": "http://127.0.0.1:17170",
    "ldapUrl": "ldap://127.0.0.1:3890",
    "baseDn": "dc=example,dc=com",
    "adminPasswordFile": "/run/credentials/paasd.service/lldap-admin-password",
    "timeoutSeconds": 30
  },
  "groups": { "family": {} },
  "users": {
    "alice": { "email": "alice@example.com", "displayName": "Alice", "groups": ["family"], "admin": true,
               "passwordFile": "/run/credentials/paasd.service/user-alice" },
    "bob": { "email": "bob@example.com", "groups": ["family"],
             "passwordFile": "/run/credentials/paasd.service/user-bob", "passwordMode": "initial" }$extra
  }
}
JSON
}
activate() {   # activate GEN < spec: build the generation in the store, swap /etc/static atomically
  local g=$1
  mkdir -p "/nix/store/$g-etc/paas"
  cat > "/nix/store/$g-spec.json"
  ln -s "/nix/store/$g-spec.json" "/nix/store/$g-etc/paas/spec.json"
  ln -s "/nix/store/$g-etc" /etc/.static.tmp
  mv -T /etc/.static.tmp /etc/static        # rename(2)
}
mkdir -p /nix/store /etc/paas
spec | activate g1
ln -s /etc/static/paas/spec.json /etc/paas/spec.json

# journal helpers
jr() { journalctl -u paasd.service -o json --no-pager; }
# jhas FILTER: some journal entry of paasd matches the jq FILTER (jq 1.6's -e looks at the last input only)
jhas() { jr | jq -c "select($1)" | grep -q .; }
started_after() {  # started_after USEC [GENERATION]: µs timestamp of the first "reconcile started" after
  jr | jq -r --argjson t "$1" --arg g "${2:-}" \
    'select(.MESSAGE=="reconcile started" and ($g == "" or .PAAS_GENERATION==$g) and ((.__REALTIME_TIMESTAMP|tonumber) > $t)) | .__REALTIME_TIMESTAMP' | head -1
}
finished_after() {
  jr | jq -r --argjson t "$1" \
    'select((.MESSAGE|tostring|startswith("reconcile finished")) and ((.__REALTIME_TIMESTAMP|tonumber) > $t)) | .__REALTIME_TIMESTAMP' | head -1
}
wait_for() {   # wait_for SECONDS CMD...: until CMD prints something; prints it
  local deadline=$(( $(date +%s%N) + $1 * 1000000000 )) out; shift
  while :; do
    out=$("$@"); [ -n "$out" ] && { echo "$out"; return 0; }
    [ "$(date +%s%N)" -gt "$deadline" ] && return 1
    sleep 0.05
  done
}
now_us() { echo $(( $(date +%s%N) / 1000 )); }
pid() { systemctl show -p MainPID --value paasd.service; }

# --- start -----------------------------------------------------------------------------------
systemctl start paas-double-lldap.service
for i in $(seq 100); do [ -f /run/paas-double-lldap.json ] && break; sleep 0.1; done
check "lldap double listening" '[ -f /run/paas-double-lldap.json ]'
t_start=$(now_us)
systemctl start paasd.service        # Type=notify-reload: returns after READY=1 (first run done)
note "systemctl start took $(( ($(now_us) - t_start) / 1000 )) ms"
note "credentials as systemd hands them to paasd: $(stat -c '%A %U:%G %n' /run/credentials/paasd.service /run/credentials/paasd.service/* 2>&1 | tr '\n' ';')"
check "paasd is active" '[ "$(systemctl is-active paasd.service)" = active ]'
note "systemctl status"
systemctl status paasd.service --no-pager --lines=0 | sed -n '1,12p'
check "STATUS= line in systemctl status" 'systemctl status paasd.service --no-pager --lines=0 | grep -q "Status: \"2 users in sync · next resync [0-9][0-9]:[0-9][0-9]\""'
check "users created in LLDAP" 'curl -sf http://127.0.0.1:17170/__double/state | jq -e "[.users[].id] | index(\"alice\") and index(\"bob\")" >/dev/null'

# --- reload: no restart, a reconcile follows ------------------------------------------------
pid_before=$(pid); t=$(now_us)
check "systemctl reload completes" 'timeout 20 systemctl reload paasd.service'
check "reload kept the process (MainPID unchanged)" '[ "$(pid)" = "$pid_before" ]'
check "reload reconciled" 'wait_for 5 finished_after $t >/dev/null'
check "the reload was logged as such" 'jhas ".MESSAGE==\"reconcile started\" and .REASON==\"reload\" and ((.__REALTIME_TIMESTAMP|tonumber) > $t)"'

# --- a symlink swap of the spec reconciles within 2 s ---------------------------------------
spec dave erin > /tmp/g2.json
t_swap=$(now_us)
activate g2 < /tmp/g2.json
t_run=$(wait_for 2 started_after "$t_swap" 2)
check "spec swap started a reconcile within 2 s" '[ -n "$t_run" ]'
[ -n "$t_run" ] && echo "MEASURE swap_to_reconcile_start_ms=$(( (t_run - t_swap) / 1000 ))"
wait_for 10 finished_after "$t_run" >/dev/null
check "the new users are in LLDAP" 'curl -sf http://127.0.0.1:17170/__double/state | jq -e "[.users[].id] | index(\"dave\") and index(\"erin\")" >/dev/null'
check "generation 2 in the D-Bus property" 'busctl get-property org.paasd.Paasd1 /org/paasd/Paasd1 org.paasd.Paasd1 Generation | grep -qx "t 2"'

# --- an invalid spec keeps the last good one -------------------------------------------------
echo '{"version": 1, "users": {"mallory": {"emial": "x"}}}' | activate g3bad
sleep 1
check "an invalid spec does not stop paasd" '[ "$(systemctl is-active paasd.service)" = active ]'
check "STATUS= shows the spec problem" 'systemctl show -p StatusText --value paasd.service | grep -q "spec invalid: "'
check "the problems are logged with their JSON path" 'jhas ".JSON_PATH == \"users.mallory.emial\""'
check "SpecError property set" 'busctl get-property org.paasd.Paasd1 /org/paasd/Paasd1 org.paasd.Paasd1 SpecError | grep -q users.mallory'
spec dave erin | activate g4
sleep 1
check "fixed spec clears the error" '! systemctl show -p StatusText --value paasd.service | grep -q "spec invalid"'

# --- journal fields ----------------------------------------------------------------------------
note "one per-action journal entry"
jr | jq -c 'select(.PAAS_USER=="dave") | {MESSAGE, PAAS_USER, PAAS_TARGET, PAAS_ACTION, PAAS_RESULT, PAAS_GENERATION}' | head -2
check "journal entries carry PAAS_USER/TARGET/ACTION/RESULT/GENERATION" \
  'jhas ".PAAS_USER==\"dave\" and .PAAS_TARGET==\"lldap\" and .PAAS_ACTION==\"create\" and .PAAS_RESULT==\"ok\" and .PAAS_GENERATION==\"2\""'
check "journalctl -u paasd PAAS_USER=alice" '[ -n "$(journalctl -u paasd.service PAAS_USER=alice --no-pager -q)" ]'

# --- paasctl over D-Bus ------------------------------------------------------------------------
note "paasctl status (root)"
paasctl status; rc=$?
check "paasctl status works for root" '[ $rc = 0 ] && paasctl status | grep -q "^alice .*✓"'
check "paasctl status --json" 'paasctl status --json | jq -e ".users.dave.lldap.state == \"ok\"" >/dev/null'
out=$(runuser -u bob -- paasctl status 2>&1); rc=$?
note "paasctl status (bob): rc=$rc $out"
check "paasctl status is denied to an unprivileged user" '[ $rc != 0 ] && echo "$out" | grep -q "access denied"'
check "paasctl status works for the admin group" 'runuser -u carol -- paasctl status >/dev/null'
out=$(paasctl reconcile); rc=$?
note "paasctl reconcile: rc=$rc $out"
check "paasctl reconcile" '[ $rc = 0 ] && echo "$out" | grep -q "0 failed"'
check "paasctl plan (from the daemon)" 'paasctl plan >/dev/null'

# --- no secret in the journal ------------------------------------------------------------------
check "journalctl --grep finds no user password" '[ -z "$(journalctl --no-pager -q --grep "$ALICE_PW")" ]'
check "journalctl --grep finds no admin password" '[ -z "$(journalctl --no-pager -q --grep "$ADMIN_PW")" ]'

# --- sandboxing score --------------------------------------------------------------------------
score=$(systemd-analyze security paasd.service --no-pager 2>/dev/null | tail -1)
note "systemd-analyze security: $score"
echo "MEASURE security=\"$score\""

# --- idle cost ---------------------------------------------------------------------------------
sleep 2
P=$(pid)
ticks() { awk '{print $14 + $15}' "/proc/$P/stat"; }
t0=$(ticks)
sleep "$IDLE_SECONDS"
t1=$(ticks)
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$P/status")
echo "MEASURE profile=$PROFILE idle_seconds=$IDLE_SECONDS idle_cpu_ticks=$(( t1 - t0 )) clk_tck=$(getconf CLK_TCK) idle_rss_kb=$rss threads=$(ls /proc/$P/task | wc -l)"
check "idle: at most one CPU tick (10 ms) in ${IDLE_SECONDS}s" '[ $(( t1 - t0 )) -le 1 ]'
# The RSS target is for the release build (a debug build maps far more code).
if [ "$PROFILE" = release ]; then check "idle RSS < 15 MB" '[ "$rss" -lt 15360 ]'; fi

# --- stop during a reconcile leaves the state consistent --------------------------------------
curl -sf -X POST -H 'content-type: application/json' -d '{"delayMs": 300}' http://127.0.0.1:17170/__double/faults >/dev/null
many=$(for i in $(seq -w 1 60); do echo "u$i"; done)
spec dave erin $many > /tmp/g5.json
t=$(now_us)
activate g5 < /tmp/g5.json
check "the big spec started a reconcile" 'wait_for 5 started_after "$t" >/dev/null'
sleep 1.5
t_stop=$(now_us)
systemctl stop paasd.service
note "systemctl stop took $(( ($(now_us) - t_stop) / 1000 )) ms"
check "stopped cleanly (exit 0)" '[ "$(systemctl show -p ExecMainStatus --value paasd.service)" = 0 ] && [ "$(systemctl show -p Result --value paasd.service)" = success ]'
check "the run was cancelled, not completed" 'jhas "(.MESSAGE|tostring|contains(\"(cancelled)\"))"'
check "state file is valid JSON after the stop" 'jq -e . /var/lib/paasd/state.json >/dev/null'
ls -la /var/lib/paasd
curl -sf -X POST http://127.0.0.1:17170/__double/faults/clear >/dev/null
systemctl start paasd.service
check "after a restart everyone is reconciled" 'paasctl status --json | jq -e "[.users[][] | .state] | all(. == \"ok\") and length == 64" >/dev/null'
systemctl status paasd.service --no-pager --lines=0 | grep Status:

note "journal of paasd (last 15)"
journalctl -u paasd.service --no-pager -n 15 -o cat
exit $fail
