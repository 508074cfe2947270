# Every option of services.paas set (every service connected), for checking the rendered spec
# against paasd's parser (`paasctl validate`, see check.sh). Not a recommended configuration.
{ lib, ... }:
{
  imports = [ ./example.nix ];
  services.paas = {
    removal = lib.mkForce "delete";
    removalGracePeriod = "30d";
    removalGuard.maxPercent = 10;
    resyncInterval = lib.mkForce 1800;
    lldap = {
      disabledGroup = "disabled";
      timeoutSeconds = 10;
    };
    passwords = {
      strategy = "perUser";
      universalPasswordFile = "/run/secrets/paas/universal";
    };
    groups.family.attributes.department = "home";
    nextcloud = {
      url = "https://cloud.example.com";
      adminUser = "root";
      adminPasswordFile = "/run/secrets/nextcloud-admin";
      groups = [ "family" ];
      passwordStrategy = "universal";
    };
    gitlab = {
      url = "https://git.example.com";
      tokenFile = "/run/secrets/gitlab-token";
      ldapProvider = "ldapmain";
      passwordStrategy = "none";
    };
    jellyfin = {
      url = "http://127.0.0.1:8096";
      apiKeyFile = "/run/secrets/jellyfin-api-key";
      passwordStrategy = "generated";
    };
    vaultwarden = {
      url = "https://vault.example.com";
      adminTokenFile = "/run/secrets/vaultwarden-admin-token";
    };
    mailcow = {
      url = "https://mail.example.com";
      apiKeyFile = "/run/secrets/mailcow-api-key";
      domain = "example.com";
    };
    users.alice = {
      passwordStrategy = "generated";
      services = [
        "nextcloud"
        "gitlab"
        "jellyfin"
        "vaultwarden"
        "mailcow"
      ];
      attributes.phone-number = [ "+1 555 0100" ];
      nextcloud = {
        quota = "10 GB";
        groups = [ "family" ];
        admin = true;
      };
      gitlab = {
        admin = false;
        external = false;
        canCreateGroup = true;
        projectsLimit = 5;
      };
      jellyfin = {
        admin = false;
        enableAllFolders = true;
      };
      mailcow = {
        quota = 2048;
        active = true;
      };
    };
  };
}
