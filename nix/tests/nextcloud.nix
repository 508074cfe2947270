# NixOS VM test: Nextcloud as a paasd target on the same machine as LLDAP.
# Depends on the Nextcloud reconciler (OCS provisioning API) being implemented in paasd.
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
  ncAdminPassword = "nextcloud-root-Secret-4410";
  ncAdminPasswordFile = "/etc/paas-test/nextcloud-admin";
in
{
  name = "paasd-nextcloud";

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [
        paasModule
        ./common.nix
      ];
      virtualisation.memorySize = lib.mkForce 3072;

      # nextcloud-setup reads the file as nextcloud; paasd gets it through LoadCredential
      environment.etc."paas-test/nextcloud-admin" = {
        text = ncAdminPassword;
        mode = "0400";
        user = "nextcloud";
        group = "nextcloud";
      };

      services.nextcloud = {
        enable = true;
        # nextcloud31 in the flake's pinned nixpkgs; the fallbacks keep the test evaluating
        # against package sets without it
        package = pkgs.nextcloud31 or pkgs.nextcloud30 or pkgs.nextcloud;
        hostName = "localhost";
        config = {
          adminuser = "root";
          adminpassFile = ncAdminPasswordFile;
          dbtype = "sqlite";
        };
      };

      services.paas = {
        enable = true;
        package = paasPackage;
        nextcloud = {
          url = "http://localhost";
          adminUser = "root";
          adminPasswordFile = ncAdminPasswordFile;
          passwordStrategy = "perUser";
        };
        groups.family = { };
        users = {
          alice = {
            email = "alice@example.com";
            displayName = "Alice Liddell";
            groups = [ "family" ];
            passwordFile = "${t.secretsDir}/alice";
            services = [ "nextcloud" ];
            nextcloud = {
              quota = "1 GB";
              groups = [ "family" ];
            };
          };
          # declared without services: gets an account in every configured service
          bob = {
            email = "bob@example.com";
            displayName = "Bob";
            passwordFile = "${t.secretsDir}/bob";
            nextcloud.admin = true;
          };
        };
      };

      specialisation.bobDisabled.configuration = {
        services.paas.users.bob.enable = lib.mkForce false;
      };
    };

  testScript =
    { nodes, ... }:
    ''
      BASE_DN = "${t.baseDn}"
      LDAP_URL = "${t.ldapUrl}"
      ADMIN_PW_FILE = "${t.adminPasswordFile}"
      SECRETS = "${t.secretsDir}"
    ''
    + builtins.readFile ./helpers.py
    + ''


      def ocs(path):
          """GET an OCS provisioning API resource as Nextcloud's admin; returns ocs.data."""
          out = machine.succeed(
              "curl -sSf -H 'OCS-APIRequest: true' -u \"root:$(cat ${ncAdminPasswordFile})\" "
              f"'http://localhost/ocs/v2.php/cloud/{path}?format=json'"
          )
          return json.loads(out)["ocs"]["data"]


      def webdav_status(user):
          return machine.succeed(
              f"curl -s -o /dev/null -w '%{{http_code}}' -u \"{user}:$(cat {SECRETS}/{user})\" "
              f"-X PROPFIND -H 'Depth: 0' http://localhost/remote.php/dav/files/{user}/"
          ).strip()


      start_all()
      machine.wait_for_unit("lldap.service")
      machine.wait_for_unit("nextcloud-setup.service")
      machine.wait_for_unit("phpfpm-nextcloud.service")
      machine.wait_for_unit("paasd.service")

      with subtest("users are provisioned into LLDAP and Nextcloud"):
          wait_for(lambda: user_exists("alice") and user_exists("bob"), "LLDAP accounts")
          wait_for(lambda: "alice" in ocs("users")["users"] and "bob" in ocs("users")["users"], "Nextcloud accounts", timeout=120)
          alice = ocs("users/alice")
          assert alice["displayname"] == "Alice Liddell", alice
          assert alice["email"] == "alice@example.com", alice
          assert "family" in alice["groups"], alice
          assert alice["quota"]["quota"] == 1024 ** 3 or alice["quota"]["quota"] == 10 ** 9, alice["quota"]
          assert "admin" in ocs("users/bob")["groups"]
          # perUser strategy: the user's own password opens Nextcloud
          assert webdav_status("alice") == "207", webdav_status("alice")

      with subtest("a user created by hand in Nextcloud is left alone"):
          machine.succeed(
              "curl -sSf -H 'OCS-APIRequest: true' -u \"root:$(cat ${ncAdminPasswordFile})\" "
              "-d userid=handmade -d password=Handmade-Passw0rd-77 "
              "'http://localhost/ocs/v2.php/cloud/users?format=json'"
          )

      with subtest("enable = false disables the Nextcloud account"):
          machine.succeed("${nodes.machine.system.build.toplevel}/specialisation/bobDisabled/bin/switch-to-configuration test")
          wait_for(lambda: ocs("users/bob")["enabled"] is False, "bob disabled in Nextcloud")
          assert ocs("users/alice")["enabled"] is True
          assert ocs("users/handmade")["enabled"] is True

      with subtest("paasctl status shows users x targets"):
          out = machine.succeed("paasctl status")
          print(out)
          assert "nextcloud" in out and "alice" in out, out
          # every configured target is in the status, per user: alice is in sync in Nextcloud too
          machine.succeed(
              "paasctl status --json | jq -e '.targets.nextcloud.ok == true and .users.alice.nextcloud.state == \"ok\"'"
          )

      with subtest("no password reaches the journal"):
          for secret in ["${ncAdminPassword}", "${t.initialPasswords.alice}", "${t.initialPasswords.bob}"]:
              no_secret_in_journal(secret)
    '';
}
