#!/usr/bin/env bash
# Checks the project's Nix code without a binary cache:
#   1. every .nix file parses (nix-instantiate --parse);
#   2. with an assembled evaluation tree (PAAS_NIX_EVAL_TREE, see docs/nixos.md), evaluates against
#      the real NixOS module system:
#        - the module with the example configuration: assertions, the unit's serviceConfig,
#          the spec and the unit file built offline (its sandboxing compared with
#          dist/paasd.service's), the D-Bus policy;
#        - the evaluation-only assertion test (nix/tests/eval-assertions.nix);
#        - each VM test down to its test derivation;
#        - the flake's outputs (with a nixpkgs input made of the tree);
#        - nix/package.nix (its filtered source and build arguments);
#        - docs/options.md's generated option reference is up to date (--write-docs updates it).
# Optional: PAASCTL=<path of a built paasctl> also runs `paasctl validate --spec` on the spec.
#
# Usage: PAAS_NIX_EVAL_TREE=/path/to/tree nix/eval/check.sh [--write-docs]
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WRITE_DOCS=0
[ "${1:-}" = "--write-docs" ] && WRITE_DOCS=1

fail=0
step() { printf '\n== %s\n' "$*"; }
ok() { printf 'ok: %s\n' "$*"; }
bad() { printf 'FAIL: %s\n' "$*"; fail=1; }

step "parse every .nix file"
n=0
while IFS= read -r -d '' f; do
  n=$((n + 1))
  if ! nix-instantiate --parse "$f" > /dev/null; then bad "$f does not parse"; fi
done < <(cd "$REPO" && find . -name '*.nix' -not -path './target/*' -not -path './.git/*' -print0)
ok "$n .nix files parsed"

if [ -z "${PAAS_NIX_EVAL_TREE:-}" ]; then
  echo "PAAS_NIX_EVAL_TREE is not set: skipping the evaluations (see docs/nixos.md)"
  exit "$fail"
fi
TREE=$(cd "$PAAS_NIX_EVAL_TREE" && pwd)
for d in lib nixos stub-pkgs.nix; do
  [ -e "$TREE/$d" ] || { echo "$TREE is not an assembled evaluation tree (no $d)"; exit 2; }
done

H="(import $REPO/nix/eval/lib.nix { tree = $TREE; repo = $REPO; })"
ev() { nix-instantiate --eval --strict --json -E "let h = $H; in $1"; }
evraw() { ev "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin), end="")'; }
build() { nix-build --option substituters '' --no-out-link -E "let h = $H; in $1" 2> /dev/null | tail -n 1 || true; }

step "module + example configuration (nix/eval/example.nix)"
failed=$(ev 'map (a: a.message) (builtins.filter (a: !a.assertion) h.example.config.assertions)')
if [ "$failed" = "[]" ]; then ok "no failed assertion"; else bad "failed assertions: $failed"; fi
ev 'h.example.config.systemd.services.paasd.serviceConfig' | python3 -c '
import json, sys
sc = json.load(sys.stdin)
print(json.dumps(sc, indent=1, sort_keys=True))
want = {"Type": "notify-reload", "User": "paasd", "Group": "paasd", "StateDirectory": "paasd",
        "StateDirectoryMode": "0700", "ProtectSystem": "strict", "UMask": "0077", "WatchdogSec": "60s",
        "CapabilityBoundingSet": "", "NoNewPrivileges": True, "Restart": "on-failure"}
bad = {k: sc.get(k) for k, v in want.items() if sc.get(k) != v}
assert not bad, f"unexpected serviceConfig values: {bad}"
assert "lldap-admin-password:/run/secrets/lldap-admin-password" in sc["LoadCredential"], sc["LoadCredential"]
assert "user-alice:/run/secrets/paas/alice" in sc["LoadCredential"], sc["LoadCredential"]
assert "--resync-interval" in sc["ExecStart"] and "3600" in sc["ExecStart"], sc["ExecStart"]
' && ok "serviceConfig" || bad "serviceConfig"
unit=$(ev 'h.example.config.systemd.services.paasd.unitConfig // { inherit (h.example.config.systemd.services.paasd) after wants wantedBy; }')
echo "$unit"
case "$unit" in *'"lldap.service"'*) ok "ordered after/wants lldap.service" ;; *) bad "not ordered after lldap.service" ;; esac

spec=$(build 'h.example.config.environment.etc."paas/spec.json".source')
if [ -n "$spec" ] && python3 -m json.tool "$spec" > /dev/null; then
  ok "spec built: $spec"
  cat "$spec"; echo
  python3 - "$spec" "$REPO/docs/spec.md" << 'EOF' && ok "spec keys are documented in docs/spec.md" || bad "spec keys"
import json, re, sys
spec = json.load(open(sys.argv[1]))
doc = open(sys.argv[2]).read()
documented = set(re.findall(r"`([A-Za-z]+)`", doc))
def walk(v, path, top):
    if isinstance(v, dict):
        for k, x in v.items():
            # map keys under users/groups are ids, not spec keys
            if path in ("users", "groups") or (path.startswith("users.") and path.endswith(".attributes")):
                walk(x, f"{path}.{k}", False)
                continue
            assert k in documented, f"{path}.{k}: key not in docs/spec.md"
            walk(x, f"{path}.{k}".lstrip("."), False)
walk(spec, "", True)
assert "/nix/store" not in json.dumps(spec), "a store path in the spec"
# every secret is named by its credential path
files = re.findall(r'"[A-Za-z]*File": "([^"]*)"', json.dumps(spec))
assert files and all(f.startswith("/run/credentials/paasd.service/") for f in files), files
EOF
  if [ -n "${PAASCTL:-}" ]; then
    if "$PAASCTL" validate --spec "$spec"; then ok "paasctl validate accepts the spec"; else bad "paasctl validate rejects the spec"; fi
  fi
else
  bad "spec.json did not build"
fi

spec_full=$(build 'h.exampleFull.config.environment.etc."paas/spec.json".source')
failed=$(ev 'map (a: a.message) (builtins.filter (a: !a.assertion) h.exampleFull.config.assertions)')
if [ -n "$spec_full" ] && [ "$failed" = "[]" ]; then
  ok "spec with every option set (nix/eval/example-full.nix) built: $spec_full"
  if [ -n "${PAASCTL:-}" ]; then
    if "$PAASCTL" validate --spec "$spec_full"; then ok "paasctl validate accepts it"; else bad "paasctl validate rejects it"; fi
  fi
else
  bad "nix/eval/example-full.nix: $failed"
fi

unitdir=$(build 'h.example.config.systemd.units."paasd.service".unit')
if [ -n "$unitdir" ] && [ -f "$unitdir/paasd.service" ]; then
  cat "$unitdir/paasd.service"
  for line in 'Type=notify-reload' 'X-Reload-Triggers=' 'LoadCredential=user-bob:/run/secrets/paas/bob' \
    'SystemCallFilter=@system-service' 'SystemCallFilter=~@privileged' 'RestrictAddressFamilies=AF_INET6' \
    'WantedBy=multi-user.target'; do
    grep -q -F -- "$line" "$unitdir/paasd.service" || bad "paasd.service lacks $line"
  done
  ok "paasd.service rendered: $unitdir/paasd.service"
  # the NixOS unit is sandboxed at least like the non-NixOS one (dist/paasd.service, # Sandboxing)
  python3 - "$REPO/dist/paasd.service" "$unitdir/paasd.service" << 'EOF' && ok "sandboxing as in dist/paasd.service" || bad "sandboxing differs from dist/paasd.service"
import sys
def settings(path, only_sandboxing):
    out, on = {}, not only_sandboxing
    for line in open(path):
        line = line.strip()
        if line == "# Sandboxing":
            on = True
        elif line.startswith("[") and only_sandboxing:
            on = False
        if not on or not line or line.startswith("#") or "=" not in line:
            continue
        k, v = line.split("=", 1)
        words = v.split() if k in ("RestrictAddressFamilies", "SystemCallFilter") else [v]
        if k == "SystemCallFilter" and v.startswith("~"):  # "~a b" denies both
            words = ["~" + w.lstrip("~") for w in words]
        out.setdefault(k, set()).update({"yes": "true", "no": "false"}.get(w, w) for w in words)
    return out
dist, nixos = settings(sys.argv[1], True), settings(sys.argv[2], False)
diff = {k: (sorted(v), sorted(nixos.get(k, ()))) for k, v in dist.items() if nixos.get(k) != v}
for k, (d, n) in sorted(diff.items()):
    print(f"  {k}: dist/paasd.service {d}, NixOS unit {n or 'unset'}")
sys.exit(1 if diff else 0)
EOF
else
  bad "paasd.service did not build"
fi

policy=$(build 'builtins.head (builtins.filter (p: (p.name or "") == "paasd-dbus-policy") h.example.config.services.dbus.packages)')
pfile="$policy/share/dbus-1/system.d/org.paasd.Paasd1.conf"
if [ -f "$pfile" ]; then
  cat "$pfile"
  python3 - "$pfile" << 'EOF' && ok "D-Bus policy" || bad "D-Bus policy"
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
pol = {(p.get("user"), p.get("group"), p.get("context")): [(c.tag, dict(c.attrib)) for c in p] for p in root.findall("policy")}
name = "org.paasd.Paasd1"
assert ("allow", {"own": name}) in pol[("paasd", None, None)]
assert ("allow", {"send_destination": name}) in pol[("root", None, None)]
assert ("allow", {"send_destination": name}) in pol[(None, "wheel", None)]
assert ("deny", {"send_destination": name}) in pol[(None, None, "default")]
assert ("deny", {"own": name}) in pol[(None, None, "default")]
EOF
else
  bad "D-Bus policy did not build"
fi

users=$(ev '{ inherit (h.example.config.users.users.paasd) isSystemUser group; inherit (h.example.config.users.groups) paasd; pkgs = map (p: p.name) h.example.config.environment.systemPackages; }')
case "$users" in *'"isSystemUser":true'*'"paasd-standin"'*) ok "system user paasd, package in systemPackages" ;; *) bad "users/systemPackages: $users" ;; esac

step "evaluation-only assertion test (nix/tests/eval-assertions.nix)"
evraw 'h.assertions.report'
if [ "$(ev 'h.assertions.passed')" = "true" ]; then
  ok "$(ev 'builtins.length h.assertions.results') cases"
else
  bad "assertion cases failed"
fi

step "VM tests evaluate to test derivations"
DRIVER_SYMBOLS=start_all,test_script,machines,vlans,driver,log,os,create_machine,subtest,run_tests,join_all,retry,serial_stdout_off,serial_stdout_on,polling_condition,Machine
for t in "$REPO"/nix/tests/*.nix; do
  name=$(basename "$t" .nix)
  case "$name" in common | values | eval-assertions) continue ;; esac
  if drv=$(ev "(h.vmTest $t).config.test.drvPath" 2> /tmp/paas-eval-$$.err); then
    ok "$name: $drv"
    scriptfile=/tmp/paas-testscript-$$-$name.py
    evraw "(h.vmTest $t).config.testScriptString" > "$scriptfile"
    if python3 -c 'import sys; compile(open(sys.argv[1]).read(), "testScript", "exec")' "$scriptfile"; then
      ok "$name: testScript compiles as Python"
    else
      bad "$name: testScript is not valid Python"
    fi
    # what the test driver's build does: pyflakes with the driver's symbols, mypy with its type hints
    if python3 -m pyflakes --version > /dev/null 2>&1; then
      if PYFLAKES_BUILTINS="machine,$DRIVER_SYMBOLS" python3 -m pyflakes "$scriptfile"; then
        ok "$name: pyflakes clean"
      else
        bad "$name: pyflakes"
      fi
    fi
    if python3 -m mypy --version > /dev/null 2>&1; then
      typed=/tmp/paas-testscript-$$-typed_$name.py
      { cat "$TREE/nixos/lib/test-script-prepend.py"; echo "machine: Machine;"; echo; cat "$scriptfile"; } > "$typed"
      # errors inside the driver's own sources (missing third-party stubs here) are not ours
      if MYPYPATH="$TREE/nixos/lib/test-driver" python3 -m mypy --no-implicit-optional --no-error-summary \
        "$typed" 2>&1 | grep -F "$(basename "$typed")"; then
        bad "$name: mypy"
      else
        ok "$name: mypy finds nothing in the test script"
      fi
      rm -f "$typed"
    fi
    rm -f "$scriptfile"
  else
    tail -n 20 /tmp/paas-eval-$$.err
    bad "$name does not evaluate"
  fi
done
rm -f /tmp/paas-eval-$$.err

step "flake outputs (nixpkgs input = the tree)"
ev '{
  checks = builtins.mapAttrs (_: c: c.drvPath) h.flake.checks.x86_64-linux;
  packages = builtins.attrNames h.flake.packages.x86_64-linux;
  modules = builtins.attrNames h.flake.nixosModules;
  overlay = (h.flake.overlays.default h.flake.packages.x86_64-linux h.flake.packages.x86_64-linux) ? paasd;
  packageArgs = { inherit (h.flake.packages.x86_64-linux.default.passthru.buildArgs) pname version cargoBuildFlags doCheck; inherit (h.flake.packages.x86_64-linux.default.passthru.buildArgs.meta) mainProgram; };
  devShell = h.flake.devShells.x86_64-linux.default.drvPath;
  formatter = h.flake.formatter.x86_64-linux.name;
}' | python3 -c '
import json, sys
o = json.load(sys.stdin)
print(json.dumps(o, indent=1))
assert set(o["checks"]) >= {"package", "eval-assertions", "provisioning", "nextcloud"}, o["checks"]
assert set(o["packages"]) == {"default", "paasd"}
assert set(o["modules"]) == {"default", "paas"}
assert o["packageArgs"]["mainProgram"] == "paasd" and o["packageArgs"]["doCheck"] is False
' && ok "flake outputs" || bad "flake outputs"

report=$(build 'h.flake.checks.x86_64-linux.eval-assertions')
if [ -n "$report" ] && [ "$(grep -c '^ok ' "$report")" = "$(ev 'builtins.length h.assertions.results')" ]; then
  ok "the flake check eval-assertions builds: $report ($(grep -c '^ok ' "$report") cases ok)"
else
  bad "the flake check eval-assertions does not build"
fi

step "nix/package.nix source filter"
src=$(nix-instantiate --read-write-mode --eval --strict --json -E "let h = $H; in toString h.packageArgs.src" | tr -d '"')
if [ -d "$src" ]; then
  for f in Cargo.toml Cargo.lock src/lib.rs src/bin/paasd.rs tests/doubles/Cargo.toml; do
    [ -e "$src/$f" ] || bad "package source lacks $f"
  done
  for f in modules nix docs flake.nix; do
    [ ! -e "$src/$f" ] || bad "package source includes $f"
  done
  ok "package source $src: $(find "$src" -type f | wc -l) files"
  # the workspace must resolve from the filtered source alone (members, [[bench]] targets, …)
  if command -v cargo > /dev/null; then
    if (cd "$src" && cargo metadata --no-deps --locked --offline --format-version 1 > /dev/null); then
      ok "cargo metadata resolves the workspace from the filtered source"
    else
      bad "cargo metadata fails on the filtered source: nix/package.nix's fileset misses something"
    fi
  fi
else
  bad "package source did not evaluate"
fi

step "docs/options.md option reference"
evraw 'h.optionsDoc' > /tmp/paas-options-$$.md
python3 - "$REPO/docs/options.md" /tmp/paas-options-$$.md "$WRITE_DOCS" << 'EOF' && ok "docs/options.md is up to date" || bad "docs/options.md is out of date: run nix/eval/check.sh --write-docs"
import sys
doc_path, gen_path, write = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
begin, end = "<!-- BEGIN GENERATED OPTIONS -->", "<!-- END GENERATED OPTIONS -->"
doc = open(doc_path).read()
gen = open(gen_path).read().rstrip("\n")
head, rest = doc.split(begin, 1)
_, tail = rest.split(end, 1)
new = f"{head}{begin}\n\n{gen}\n\n{end}{tail}"
if new != doc:
    if write:
        open(doc_path, "w").write(new)
        print("docs/options.md updated")
    else:
        sys.exit(1)
EOF
rm -f /tmp/paas-options-$$.md
if python3 -c 'import sys; sys.exit(open(sys.argv[2]).read() not in open(sys.argv[1]).read())' \
  "$REPO/docs/options.md" "$REPO/nix/eval/example.nix"; then
  ok "docs/options.md shows nix/eval/example.nix verbatim"
else
  bad "docs/options.md's example differs from nix/eval/example.nix"
fi

echo
if [ "$fail" = 0 ]; then echo "all Nix checks passed"; else echo "some Nix checks FAILED"; fi
exit "$fail"
