# NixOS VM test: LLDAP and paasd on one machine, driven by services.paas through
# specialisations, one per step (switch-to-configuration test), checked through LDAP binds and
# searches (ldapwhoami/ldapsearch), LLDAP's GraphQL API (curl), systemctl, journalctl and paasctl.
#
# Module arguments (_module.args): paasModule (the services.paas module), paasPackage.
{
  paasModule,
  paasPackage,
  lib,
  ...
}:

let
  t = import ./values.nix;
  pwFile = user: "${t.secretsDir}/${user}";

  groups0 = {
    family = { };
    media.displayName = "media";
  };
  users0 = {
    alice = {
      email = "alice@example.com";
      displayName = "Alice Liddell";
      firstName = "Alice";
      lastName = "Liddell";
      groups = [
        "family"
        "media"
      ];
      admin = true;
      passwordFile = pwFile "alice";
      passwordMode = "enforce";
    };
    bob = {
      email = "bob@example.com";
      displayName = "Bob";
      groups = [ "family" ];
      passwordFile = pwFile "bob";
      passwordMode = "initial";
    };
    carol = {
      email = "carol@example.com";
      displayName = "Carol";
      groups = [ "media" ];
      enable = false;
    };
  };

  # step "changed": attributes and memberships change, a group is added; the same password
  # files, so the unit is unchanged except for the spec (reload, not restart)
  groups1 = groups0 // {
    staff = { };
  };
  users1 = users0 // {
    alice = users0.alice // {
      displayName = "Alice Pleasance Liddell";
      groups = [
        "family"
        "media"
        "staff"
      ];
    };
    bob = users0.bob // {
      email = "robert@example.com";
      groups = [ "media" ];
    };
  };

  # steps "removed" and "deleted": bob leaves the configuration
  users2 = builtins.removeAttrs users1 [ "bob" ];

  paasStep = groups: users: extra: {
    services.paas = {
      groups = lib.mkForce groups;
      users = lib.mkForce users;
    } // extra;
  };
in
{
  name = "paasd-provisioning";

  nodes.machine =
    { ... }:
    {
      imports = [
        paasModule
        ./common.nix
      ];

      services.paas = {
        enable = true;
        package = paasPackage;
        # lldap.* defaults from services.lldap.settings (see common.nix)
        groups = groups0;
        users = users0;
      };

      specialisation = {
        changed.configuration = paasStep groups1 users1 { };
        removed.configuration = paasStep groups1 users2 { removal = "disable"; };
        deleted.configuration = paasStep groups1 users2 { removal = "delete"; };
      };
    };

  testScript =
    { nodes, ... }:
    let
      switchTo =
        name: "${nodes.machine.system.build.toplevel}/specialisation/${name}/bin/switch-to-configuration test";
    in
    ''
      BASE_DN = "${t.baseDn}"
      LDAP_URL = "${t.ldapUrl}"
      ADMIN_PW_FILE = "${t.adminPasswordFile}"
      SECRETS = "${t.secretsDir}"
    ''
    + builtins.readFile ./helpers.py
    + ''

      start_all()
      machine.wait_for_unit("lldap.service")
      machine.wait_for_open_port(3890)
      machine.wait_for_open_port(17170)
      machine.wait_for_unit("paasd.service")

      with subtest("the unit, the spec and the credentials"):
          machine.succeed("systemctl show -p Type --value paasd | grep -x notify-reload")
          spec = json.loads(machine.succeed("cat /etc/paas/spec.json"))
          assert spec["version"] == 1
          assert spec["users"]["alice"]["passwordFile"] == "/run/credentials/paasd.service/user-alice", spec
          assert spec["lldap"]["adminPasswordFile"] == "/run/credentials/paasd.service/lldap-admin-password", spec
          machine.fail("grep -r -F '${t.initialPasswords.alice}' /etc/paas/")
          machine.succeed("test \"$(stat -c %a /var/lib/paasd)\" = 700")
          machine.succeed("test \"$(stat -c %U /var/lib/paasd)\" = paasd")
          print(machine.succeed("systemd-analyze security paasd.service | tail -n 1"))

      with subtest("first provisioning: users, groups, memberships, passwords"):
          wait_for(lambda: user_exists("alice") and members("family") == ["alice", "bob"], "first reconcile")
          bind_ok("alice", f"{SECRETS}/alice")
          bind_ok("bob", f"{SECRETS}/bob")
          assert user_attr("alice", "displayName") == ["Alice Liddell"], user_attr("alice", "displayName")
          assert user_attr("bob", "mail") == ["bob@example.com"], user_attr("bob", "mail")
          assert members("media") == ["alice"], members("media")
          assert "alice" in members("lldap_admin"), members("lldap_admin")
          assert "bob" not in members("lldap_admin"), members("lldap_admin")
          # carol is declared with enable = false: created disabled, outside the managed groups
          assert user_exists("carol")
          assert "carol" in members("paas_disabled"), members("paas_disabled")

      with subtest("a user created by hand through LLDAP's GraphQL API"):
          machine.succeed(
              "lldap-gql 'mutation { createUser(user: {id: \"handmade\", email: \"handmade@example.com\", "
              "displayName: \"Made by hand\"}) { id } }'"
          )
          assert user_exists("handmade")

      with subtest("a switch that changes attributes and memberships is applied by a reload"):
          pid_before = main_pid()
          machine.succeed("${switchTo "changed"}")
          wait_for(
              lambda: user_attr("alice", "displayName") == ["Alice Pleasance Liddell"]
              and members("media") == ["alice", "bob"]
              and members("family") == ["alice"]
              and members("staff") == ["alice"],
              "the changed spec to be applied",
          )
          assert user_attr("bob", "mail") == ["robert@example.com"], user_attr("bob", "mail")
          pid_after = main_pid()
          assert pid_before == pid_after, f"paasd was restarted ({pid_before} -> {pid_after}), expected a reload"
          machine.succeed("journalctl -b -u paasd.service -q --no-pager --grep '[Rr]eload'")
          # the hand-made user is not touched
          assert user_attr("handmade", "displayName") == ["Made by hand"]

      with subtest("passwordMode: enforce resets the password, initial keeps the user's own"):
          machine.succeed(f"cp -p {SECRETS}/alice /root/alice.first && cp -p {SECRETS}/bob /root/bob.first")
          write_secret(f"{SECRETS}/alice", "${t.secondPasswords.alice}")
          write_secret(f"{SECRETS}/bob", "${t.secondPasswords.bob}")
          # systemd copies credentials when the unit starts: a changed secret needs a restart
          machine.succeed("systemctl restart paasd.service")
          machine.wait_for_unit("paasd.service")
          machine.succeed("paasctl reconcile")
          wait_for(lambda: machine.execute(
              f"ldapwhoami -x -H {LDAP_URL} -D {people_dn('alice')} -y {SECRETS}/alice")[0] == 0,
              "alice's enforced password")
          bind_fails("alice", "/root/alice.first")
          # bob (initial): the password set at creation stays
          bind_ok("bob", "/root/bob.first")
          bind_fails("bob", f"{SECRETS}/bob")

      with subtest("a spec the daemon rejects keeps the last good state and shows in systemctl status"):
          pid_before = main_pid()
          machine.succeed(
              "jq '.users.alice.groups += [\"nonexistent\"] | .users.alice.displayName = \"Should Not Apply\"' "
              "/etc/paas/spec.json > /etc/paas-test/bad-spec.json"
          )
          # replace the symlink atomically, as the NixOS activation does (paasd cannot see /root:
          # ProtectHome=true)
          machine.succeed(
              "ln -sfn /etc/paas-test/bad-spec.json /etc/paas/.spec.json.tmp && mv -T /etc/paas/.spec.json.tmp /etc/paas/spec.json"
          )
          machine.wait_until_succeeds(
              "journalctl -b -u paasd.service -q --no-pager --grep 'users\\.alice\\.groups'", timeout=30
          )
          status = machine.succeed("systemctl status paasd.service --no-pager -l || true")
          print(status)
          status_text = machine.succeed("systemctl show -p StatusText --value paasd.service")
          assert any(w in status_text.lower() for w in ("invalid", "error", "rejected")), status_text
          machine.succeed("systemctl is-active paasd.service")
          assert main_pid() == pid_before
          # nothing of the rejected spec was applied
          assert user_attr("alice", "displayName") == ["Alice Pleasance Liddell"], user_attr("alice", "displayName")
          assert members("staff") == ["alice"]
          # back to the generated spec: paasd picks it up and clears the error
          machine.succeed("ln -sfn /etc/static/paas/spec.json /etc/paas/.spec.json.tmp && mv -T /etc/paas/.spec.json.tmp /etc/paas/spec.json")
          machine.wait_until_succeeds(
              "! systemctl show -p StatusText --value paasd.service | grep -i -E 'invalid|rejected'", timeout=30
          )

      with subtest("removal = disable: a user left the configuration; the hand-made user survives"):
          machine.succeed("${switchTo "removed"}")
          wait_for(lambda: "bob" in members("paas_disabled"), "bob to be disabled")
          assert "bob" not in members("media"), members("media")
          assert user_exists("bob")
          assert user_exists("handmade")
          assert "handmade" not in members("paas_disabled")

      with subtest("removal = delete"):
          machine.succeed("${switchTo "deleted"}")
          wait_for(lambda: not user_exists("bob"), "bob to be deleted")
          assert user_exists("handmade")
          out = machine.succeed("lldap-gql '{ user(userId: \"handmade\") { id email } }'")
          assert json.loads(out)["data"]["user"]["email"] == "handmade@example.com", out
          # still declared users are untouched
          bind_ok("alice", f"{SECRETS}/alice")
          assert user_exists("carol")

      with subtest("paasctl status"):
          out = machine.succeed("paasctl status")
          print(out)
          assert "alice" in out and "carol" in out and "lldap" in out, out
          machine.succeed("paasctl status --json | jq -e .")
          # the D-Bus policy: members of services.paas.adminGroup (wheel) may ask, others may not
          machine.succeed("su -s /bin/sh walter -c 'paasctl status'")
          err = machine.fail("su -s /bin/sh eve -c 'paasctl status' 2>&1")
          print(err)

      with subtest("no password reaches the journal"):
          for secret in [
              "${t.adminPassword}",
              "${t.initialPasswords.alice}",
              "${t.initialPasswords.bob}",
              "${t.secondPasswords.alice}",
              "${t.secondPasswords.bob}",
          ]:
              no_secret_in_journal(secret)
    '';
}
