# The example configuration of docs/options.md: LLDAP and paasd on the same host.
# Secrets are files outside the Nix store, e.g. provided by sops-nix or agenix under /run/secrets:
#   /run/secrets/lldap-admin-password  mode 0440, group lldap-secrets
#   /run/secrets/paas/alice, .../bob   mode 0400, owner root
{ ... }:
{
  services.lldap = {
    enable = true;
    settings = {
      ldap_base_dn = "dc=example,dc=com";
      ldap_user_pass_file = "/run/secrets/lldap-admin-password";
    };
  };
  # LLDAP runs as a DynamicUser: let it read its admin password through a group.
  # (paasd gets every secret through LoadCredential=, which systemd reads as root.)
  users.groups.lldap-secrets = { };
  systemd.services.lldap.serviceConfig.SupplementaryGroups = [ "lldap-secrets" ];

  services.paas = {
    enable = true;
    # lldap.url, lldap.ldapUrl, lldap.baseDn, lldap.adminUsername and lldap.adminPasswordFile
    # default from services.lldap.settings.
    removal = "disable";
    resyncInterval = "1h";

    groups = {
      family = { };
      media.displayName = "Media";
    };

    users = {
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
        passwordFile = "/run/secrets/paas/alice";
      };
      bob = {
        email = "bob@example.com";
        displayName = "Bob";
        groups = [ "family" ];
        passwordFile = "/run/secrets/paas/bob";
        passwordMode = "initial";
      };
      carol = {
        email = "carol@example.com";
        displayName = "Carol";
        groups = [ "media" ];
        enable = false;
      };
    };
  };
}
