#!/usr/bin/env bash
# Installs what building and testing paasd needs on Debian/Ubuntu: a Rust toolchain (if none),
# OpenLDAP's slapd + ldap-utils (real LDAP server for the password tests), dbus (private bus for the
# D-Bus tests), nix-bin (parses every .nix file), debootstrap + systemd-container (system tests under
# a real systemd). Safe to run again: installs only what is missing.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have slapd || [ -x /usr/sbin/slapd ] || need+=(slapd)
have ldapwhoami || need+=(ldap-utils)
have dbus-daemon || need+=(dbus)
have nix-instantiate || need+=(nix-bin)
have debootstrap || need+=(debootstrap)
have systemd-nspawn || need+=(systemd-container)
have cc || need+=(gcc)
have pkg-config || need+=(pkg-config)
have curl || need+=(curl)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing ${need[*]}; run as root or: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! have cargo; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "install-deps: cargo is in ~/.cargo/bin: add it to PATH" >&2
  else
    echo "install-deps: no Rust toolchain; install one with rustup (https://rustup.rs) or apt-get install cargo" >&2
    exit 1
  fi
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
echo "install-deps: ok" >&2
