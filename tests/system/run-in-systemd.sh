#!/bin/bash
# run-in-systemd.sh DIR
#
# Boots a minimal Debian 12 with a real systemd as PID 1 (journald, system D-Bus,
# logind), installs the files from DIR, runs DIR/test.sh inside it, prints the
# test's output and exits with the test's exit code.
#
# DIR layout:
#   test.sh            run inside the booted system (cwd = /systest/in, as root)
#   *.service/*.socket/*.timer/*.path/*.target/*.mount/*.slice -> /etc/systemd/system/
#   any other file     -> /usr/local/bin/ (mode 0755)
#   rootfs/            copied verbatim onto / (e.g. rootfs/etc/paas/spec.json)
#   Installation is followed by `systemctl daemon-reload`; DIR is also visible
#   read-only at /systest/in.
#
# Environment:
#   SYSTEST_BACKEND  nspawn (default, ~1.3 s per run) | qemu (TCG full VM, ~25-30 s per run)
#   SYSTEST_SYSTEMD  stable (default: bookworm systemd 252)
#                    backports (bookworm-backports systemd 254: needed for Type=notify-reload)
#   SYSTEST_CACHE    rootfs cache dir (default: /var/cache/systest); first run debootstraps (~45 s-2 min)
#   SYSTEST_PACKAGES extra Debian packages in the guest (default: "jq curl"); the cached rootfs
#                    is keyed by flavor and package list
#   SYSTEST_MIRROR   Debian mirror (default http://deb.debian.org/debian)
#   SYSTEST_TIMEOUT  seconds for the whole run (default 600)
#   SYSTEST_ARTIFACTS  if set, output.log, rc, boot-state, journal.json, console.log and (nspawn)
#                    the persistent journal dir journal/ are copied there (`journalctl -D DIR/journal`
#                    on the host reads it, also after a timeout)
#   SYSTEST_KEEP=1   keep the per-run temp dir
set -euo pipefail

DIR=${1:?usage: run-in-systemd.sh DIR}
DIR=$(realpath "$DIR")
[ -f "$DIR/test.sh" ] || { echo "run-in-systemd: $DIR/test.sh missing" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run-in-systemd: must run as root" >&2; exit 2; }

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${SYSTEST_CACHE:-/var/cache/systest}
BACKEND=${SYSTEST_BACKEND:-nspawn}
FLAVOR=${SYSTEST_SYSTEMD:-stable}
MIRROR=${SYSTEST_MIRROR:-http://deb.debian.org/debian}
TIMEOUT=${SYSTEST_TIMEOUT:-600}
PACKAGES=${SYSTEST_PACKAGES-jq curl}
PKGKEY=$(echo "$PACKAGES" | tr ' ' '\n' | sort -u | tr '\n' ' ' | cksum | cut -d' ' -f1)
ROOT=$CACHE/rootfs-$FLAVOR-$PKGKEY
APT="-o DPkg::Lock::Timeout=600"

log() { echo "run-in-systemd: $*" >&2; }

ensure_host_pkgs() {
  local need=()
  command -v debootstrap >/dev/null || need+=(debootstrap)
  if [ "$BACKEND" = nspawn ]; then command -v systemd-nspawn >/dev/null || need+=(systemd-container); fi
  if [ "$BACKEND" = qemu ]; then
    command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
    ls /boot/vmlinuz-* >/dev/null 2>&1 || need+=(linux-image-amd64)
  fi
  if [ ${#need[@]} -gt 0 ]; then
    log "installing host packages: ${need[*]}"
    apt-get $APT update -qq && DEBIAN_FRONTEND=noninteractive apt-get $APT install -y -qq "${need[@]}" >/dev/null
  fi
}

write_guest_files() {   # $1 = directory to write usr/local/sbin/systest-runner + etc/systemd/system/... into
  install -d "$1/usr/local/sbin" "$1/etc/systemd/system/multi-user.target.wants"
  cat > "$1/usr/local/sbin/systest-runner" <<'RUNNER'
#!/bin/bash
# Runs INSIDE the booted system from systest-runner.service.
IN=/systest/in OUT=/systest/out
if systemd-detect-virt -c -q; then
  mode=container            # $IN / $OUT are bind mounts from the host
  [ -f $IN/test.sh ] || exit 0        # booted without a test: stay up (interactive use)
else
  mode=vm                   # $IN = ext4 disk /dev/vdb, $OUT = raw disk /dev/vdc (tar stream)
  for i in $(seq 150); do [ -b /dev/vdb ] && [ -b /dev/vdc ] && break; sleep 0.2; done
  [ -b /dev/vdc ] || exit 0
  mkdir -p $IN $OUT
  mount -o ro /dev/vdb $IN || echo "systest: cannot mount /dev/vdb" >&2
  mount -t tmpfs tmpfs $OUT
fi
exec 3>"$OUT/output.log"
boot_state=$(timeout 120 systemctl is-system-running --wait 2>&1)
echo "$boot_state" > "$OUT/boot-state"
(
  set -e
  if [ -d "$IN/rootfs" ]; then cp -a "$IN/rootfs/." /; fi
  for f in "$IN"/*; do
    [ -f "$f" ] || continue
    b=$(basename "$f")
    case "$b" in
      test.sh) ;;
      *.service|*.socket|*.timer|*.path|*.target|*.mount|*.slice) install -m 0644 "$f" /etc/systemd/system/ ;;
      *) install -m 0755 "$f" /usr/local/bin/ ;;
    esac
  done
  systemctl daemon-reload
) >&3 2>&1
rc=$?
if [ $rc -ne 0 ]; then
  echo "systest: installing files failed rc=$rc" >&3
else
  cd "$IN"
  if [ -x ./test.sh ]; then t=./test.sh; else t="bash ./test.sh"; fi
  timeout "${SYSTEST_TIMEOUT:-600}" $t </dev/null >&3 2>&1; rc=$?
fi
echo "$rc" > "$OUT/rc"
journalctl -b -o json --no-pager > "$OUT/journal.json" 2>/dev/null
exec 3>&-
if [ $mode = vm ]; then
  (cd $OUT && tar cf /dev/vdc output.log rc boot-state journal.json) && sync
  systemctl poweroff --no-block
else
  systemctl exit --no-block "$rc"     # systemd-nspawn then exits with $rc
fi
RUNNER
  chmod 0755 "$1/usr/local/sbin/systest-runner"
  cat > "$1/etc/systemd/system/systest-runner.service" <<'UNIT'
[Unit]
Description=System test runner
After=multi-user.target

[Service]
# Type=simple: the boot transaction completes, so the test sees a "running" system
Type=simple
ExecStart=/usr/local/sbin/systest-runner
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
UNIT
  ln -sf /etc/systemd/system/systest-runner.service \
    "$1/etc/systemd/system/multi-user.target.wants/systest-runner.service"
}

update_guest_files() {   # keep the runner in the cached rootfs in sync with this script
  local g; g=$(mktemp -d); chmod 755 "$g"; write_guest_files "$g"
  if ! diff -r "$g/usr/local/sbin" "$ROOT/usr/local/sbin" >/dev/null 2>&1 ||
     ! diff "$g/etc/systemd/system/systest-runner.service" "$ROOT/etc/systemd/system/systest-runner.service" >/dev/null 2>&1; then
    cp -a "$g/." "$ROOT/"; touch "$ROOT/.systest-ok"
  fi
  rm -rf "$g"
}

build_rootfs() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock-$FLAVOR-$PKGKEY"; flock 9
  if [ -f "$ROOT/.systest-ok" ]; then update_guest_files; exec 9>&-; return 0; fi
  local tmp=$ROOT.tmp.$$; rm -rf "$tmp" "$ROOT"
  log "debootstrap bookworm ($FLAVOR, +$PACKAGES) into $ROOT (one-off, ~2 min)"
  local include=systemd,systemd-sysv,dbus,iproute2,udev,kmod,procps
  for p in $PACKAGES; do include="$include,$p"; done
  debootstrap --variant=minbase --include="$include" \
    bookworm "$tmp" "$MIRROR" > "$CACHE/debootstrap-$FLAVOR-$PKGKEY.log" 2>&1 \
    || { log "debootstrap failed, see $CACHE/debootstrap-$FLAVOR-$PKGKEY.log"; exit 1; }
  if [ "$FLAVOR" = backports ]; then
    echo "deb $MIRROR bookworm-backports main" > "$tmp/etc/apt/sources.list.d/backports.list"
    cp /etc/resolv.conf "$tmp/etc/resolv.conf"
    mount -t proc proc "$tmp/proc"
    chroot "$tmp" apt-get $APT update -qq
    DEBIAN_FRONTEND=noninteractive chroot "$tmp" apt-get $APT install -y -qq --no-install-recommends \
      -t bookworm-backports systemd systemd-sysv udev libsystemd0 >> "$CACHE/debootstrap-$FLAVOR-$PKGKEY.log" 2>&1 \
      || { umount "$tmp/proc"; log "backports install failed"; exit 1; }
    umount "$tmp/proc"
  fi
  chroot "$tmp" apt-get clean
  rm -rf "$tmp"/var/lib/apt/lists/* "$tmp/etc/resolv.conf"
  echo systest > "$tmp/etc/hostname"
  : > "$tmp/etc/fstab"
  chroot "$tmp" passwd -d root >/dev/null         # passwordless root on the (debug) console
  for t in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer dpkg-db-backup.timer fstrim.timer; do
    ln -sf /dev/null "$tmp/etc/systemd/system/$t"
  done
  write_guest_files "$tmp"
  touch "$tmp/.systest-ok"
  mv "$tmp" "$ROOT"
  exec 9>&-
}

collect() {  # $1 = dir with output.log rc ...
  local out=$1
  [ -f "$out/output.log" ] && cat "$out/output.log"
  if [ -n "${SYSTEST_ARTIFACTS:-}" ]; then mkdir -p "$SYSTEST_ARTIFACTS"; cp -a "$out"/. "$SYSTEST_ARTIFACTS"/; fi
  if [ -s "$out/rc" ]; then RC=$(cat "$out/rc"); else
    RC=125; log "no exit code came back (boot failure or timeout); console tail:"
    tail -n 40 "$RUN/console.log" >&2 || true
  fi
}

run_nspawn() {
  local name=systest-$$ cgs=()
  mkdir -p "$RUN/out/journal"
  # PID 1 here is not systemd: nspawn cannot register with machined and uses the cgroup it
  # is started in (creating payload/ and supervisor/ below it). Give every run its own cgroup
  # in the named systemd v1 hierarchy and in the cgroup2 hierarchy so runs can go in parallel.
  if [ "$(cat /proc/1/comm)" != systemd ]; then
    for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
      [ -f "$h/cgroup.procs" ] || continue
      [ "$h" = /sys/fs/cgroup ] && [ ${#cgs[@]} -gt 0 ] && continue
      mkdir -p "$h/$name" && cgs+=("$h/$name")
    done
  fi
  set +e
  (
    for c in "${cgs[@]}"; do echo $BASHPID > "$c/cgroup.procs"; done
    # cgroup v2 inside the container, as on a stock Debian 12 host (some hosts still run a hybrid v1 hierarchy)
    export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
    exec timeout -k 15 "$TIMEOUT" systemd-nspawn --quiet --boot --directory="$ROOT" --volatile=overlay \
      --register=no --keep-unit --private-network --machine="$name" \
      --bind-ro="$DIR:/systest/in" --bind="$RUN/out:/systest/out" \
      --bind="$RUN/out/journal:/var/log/journal" --console=read-only
  ) > "$RUN/console.log" 2>&1
  NSPAWN_RC=$?
  set -e
  cp "$RUN/console.log" "$RUN/out/console.log"
  for c in "${cgs[@]}"; do find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
  rm -rf "/run/systemd/nspawn/propagate/$name"
  collect "$RUN/out"
}

run_qemu() {
  local kernel initrd img=$CACHE/root-$FLAVOR.img
  kernel=$(ls /boot/vmlinuz-* | sort -V | tail -1); initrd=/boot/initrd.img-${kernel#/boot/vmlinuz-}
  if [ ! -f "$img" ] || [ "$ROOT/.systest-ok" -nt "$img" ]; then
    log "building $img"
    mkfs.ext4 -q -F -L systest-root -d "$ROOT" "$img.tmp" 2G >/dev/null && mv "$img.tmp" "$img"
  fi
  local kb; kb=$(du -sk "$DIR" | cut -f1)
  mkfs.ext4 -q -F -d "$DIR" "$RUN/in.img" $(( kb * 2 + 16384 ))k >/dev/null
  truncate -s 512M "$RUN/out.img"
  set +e
  timeout -k 15 "$TIMEOUT" qemu-system-x86_64 -machine pc,accel=tcg -cpu max -smp 2 -m 1024 \
    -nodefaults -no-user-config -nographic -serial stdio -nic none -no-reboot \
    -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 root=/dev/vda rw panic=-1 quiet systemd.show_status=error" \
    -drive file="$img",if=virtio,format=raw,snapshot=on \
    -drive file="$RUN/in.img",if=virtio,format=raw,readonly=on \
    -drive file="$RUN/out.img",if=virtio,format=raw \
    < /dev/null > "$RUN/console.log" 2>&1
  set -e
  mkdir -p "$RUN/out"; tar -C "$RUN/out" -xf "$RUN/out.img" 2>/dev/null || true
  cp "$RUN/console.log" "$RUN/out/console.log"
  collect "$RUN/out"
}

ensure_host_pkgs
build_rootfs
RUN=$(mktemp -d /tmp/systest-run.XXXXXX)
[ "${SYSTEST_KEEP:-0}" = 1 ] && log "run dir: $RUN" || trap 'rm -rf "$RUN"' EXIT
RC=125
case "$BACKEND" in
  nspawn) run_nspawn ;;
  qemu)   run_qemu ;;
  *) log "unknown SYSTEST_BACKEND=$BACKEND"; exit 2 ;;
esac
echo "=== exit code: $RC ==="
exit "$RC"
