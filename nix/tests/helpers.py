# Helpers shared by the VM test scripts (prepended to each testScript; the Nix side defines
# BASE_DN, LDAP_URL, ADMIN_PW_FILE and SECRETS before this file).
import json
import shlex


def people_dn(uid):
    return f"uid={uid},ou=people,{BASE_DN}"


def admin_search(base, flt, *attrs):
    """ldapsearch as LLDAP's admin; returns the LDIF (unwrapped)."""
    args = " ".join(shlex.quote(a) for a in attrs)
    return machine.succeed(
        f"ldapsearch -x -LLL -o ldif-wrap=no -H {LDAP_URL} -D {people_dn('admin')} "
        f"-y {ADMIN_PW_FILE} -b {base} {shlex.quote(flt)} {args}"
    )


def user_attr(uid, attr):
    out = admin_search(f"ou=people,{BASE_DN}", f"(uid={uid})", attr)
    return [l.split(": ", 1)[1] for l in out.splitlines() if l.startswith(f"{attr}: ")]


def user_exists(uid):
    return f"dn: {people_dn(uid)}" in admin_search(f"ou=people,{BASE_DN}", f"(uid={uid})", "uid")


def members(group):
    out = admin_search(f"ou=groups,{BASE_DN}", f"(cn={group})", "member")
    prefix = "member: uid="
    return sorted(l[len(prefix):].split(",")[0] for l in out.splitlines() if l.startswith(prefix))


def bind_ok(uid, pwfile):
    machine.succeed(f"ldapwhoami -x -H {LDAP_URL} -D {people_dn(uid)} -y {pwfile}")


def bind_fails(uid, pwfile):
    machine.fail(f"ldapwhoami -x -H {LDAP_URL} -D {people_dn(uid)} -y {pwfile}")


def main_pid():
    pid = machine.succeed("systemctl show -p MainPID --value paasd.service").strip()
    assert pid not in ("", "0"), f"paasd is not running (MainPID={pid!r})"
    return pid


def write_secret(path, value):
    """Replace a secret file atomically, mode 0400, without a trailing newline."""
    machine.succeed(
        f"(umask 077; printf %s {shlex.quote(value)} > {path}.new) && chmod 0400 {path}.new && mv {path}.new {path}"
    )


def wait_for(check, what, timeout=60):
    """Retry a Python predicate (which may raise) until it holds."""

    def attempt(_last_try):
        try:
            return bool(check())
        except Exception as e:  # a failed command inside the predicate
            machine.log(f"waiting for {what}: {e}")
            return False

    with machine.nested(f"waiting for {what}"):
        retry(attempt, timeout)


def no_secret_in_journal(secret):
    # journalctl --grep exits non-zero when nothing matches; the plain grep over every field
    # (-o verbose) makes the check independent of that exit-code convention.
    machine.fail(f"journalctl -b -q --no-pager --grep {shlex.quote(secret)}")
    machine.fail(f"journalctl -b -o verbose --no-pager | grep -F -- {shlex.quote(secret)}")
