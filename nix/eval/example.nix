# The example configuration of docs/options.md: LLDAP and paasd on the same host.
# Secrets are files outside the Nix store (here: provided by agenix/sops-nix or by hand under /run/secrets).
{ ... }:
{
  services.lldap = {
    enable = true;
    settings = {
      ldap_base_dn = "dc=example,dc=com";
      ldap_user_pass_file = "/run/secrets/lldap-admin-password";
      force_ldap_user_pass_reset = "always";
    };
  };

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
