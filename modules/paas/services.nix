# The table of the services paasd provisions into: the one place that says, per service, what
# its `services.paas.<name>` connection looks like (the secret option, the credential it becomes,
# its extra fields), whether paasd sets passwords there, its per-user settings, and the units of
# the nixpkgs service of the same name paasd is ordered after when it runs on the same host.
#
# Everything the module writes per service is generated from this table: the options
# (options.nix), the credentials and their secret path checks (common.nix, assertions.nix), the
# spec (spec.nix) and the unit's ordering (unit.nix). Adding a service means adding an entry here
# (and teaching paasd about it, see docs/services.md).
#
# An entry:
#   order        position in every generated list (LoadCredential= lines, the services enum, …)
#   title        how documentation and messages name the service
#   urlExample   example of `services.paas.<name>.url`
#   secret       the connection's secret: `option` (its option name), `credential` (the
#                LoadCredential= name, so the spec holds /run/credentials/paasd.service/<credential>),
#                `example`, `what` (the description says "Path of a file holding <what>")
#   passwords    whether paasd sets passwords in the service (adds `passwordStrategy`)
#   options      extra connection options
#   checks       evaluation-time checks of extra connection options: attribute name →
#                { valid = value → bool; what = "…"; }, failing as
#                `services.paas.<name>.<attribute> = "<value>" is not <what>.`
#   userOptions  the per-user settings `services.paas.users.<id>.<name>.*` (all null by default)
#   userChecks   like `checks`, for non-null per-user settings
#   hostUnits    units of `services.<name>` that paasd is ordered after when that service is enabled
#                on the same host
{ lib }:

let
  inherit (lib) mkOption types;

  # an optional per-user setting: null (the default) = not managed / the service's default
  nullOrOpt =
    type: description: example:
    mkOption {
      type = types.nullOr type;
      default = null;
      inherit description;
    }
    // lib.optionalAttrs (example != null) { inherit example; };
in
{
  nextcloud = {
    order = 1;
    title = "Nextcloud";
    urlExample = "https://cloud.example.com";
    secret = {
      option = "adminPasswordFile";
      credential = "nextcloud-admin-password";
      example = "/run/secrets/nextcloud-admin-pass";
      what = "the password (or an app password) of `adminUser`";
    };
    passwords = true;
    options.adminUser = mkOption {
      type = types.str;
      default = "root";
      example = "admin";
      description = "Nextcloud administrator account paasd uses for the OCS provisioning API.";
    };
    checks = { };
    userOptions = {
      quota = nullOrOpt types.str "Quota, e.g. `\"10 GB\"`, `\"none\"` or `\"default\"`." "10 GB";
      groups = nullOrOpt (types.listOf types.str) "Nextcloud groups (created if missing)." [ "family" ];
      admin = nullOrOpt types.bool "Member of Nextcloud's `admin` group." null;
    };
    userChecks.quota = {
      valid =
        q:
        q == "none"
        || q == "default"
        || builtins.match "[0-9]+([.][0-9]+)? *(B|KB|MB|GB|TB|K|M|G|T)?" (lib.toUpper q) != null;
      what = ''a Nextcloud quota: use "none", "default", a byte count or a size like "10 GB"'';
    };
    hostUnits = [
      "nextcloud-setup.service"
      "phpfpm-nextcloud.service"
    ];
  };

  gitlab = {
    order = 2;
    title = "GitLab";
    urlExample = "https://git.example.com";
    secret = {
      option = "tokenFile";
      credential = "gitlab-token";
      example = "/run/secrets/gitlab-admin-token";
      what = "an administrator personal access token (scope `api`)";
    };
    passwords = true;
    options.ldapProvider = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "ldapmain";
      description = ''
        GitLab's LDAP provider name; when set, created users get `extern_uid` + `provider` so an
        LDAP login maps to the same account.
      '';
    };
    checks = { };
    userOptions = {
      admin = nullOrOpt types.bool "GitLab administrator." null;
      external = nullOrOpt types.bool "GitLab external user." null;
      canCreateGroup = nullOrOpt types.bool "May create top-level groups." null;
      projectsLimit = nullOrOpt types.ints.unsigned "Maximum number of personal projects." 10;
    };
    userChecks = { };
    hostUnits = [ "gitlab.service" ];
  };

  jellyfin = {
    order = 3;
    title = "Jellyfin";
    urlExample = "http://127.0.0.1:8096";
    secret = {
      option = "apiKeyFile";
      credential = "jellyfin-api-key";
      example = "/run/secrets/jellyfin-api-key";
      what = "a Jellyfin API key";
    };
    passwords = true;
    options = { };
    checks = { };
    userOptions = {
      admin = nullOrOpt types.bool "Jellyfin administrator." null;
      enableAllFolders = nullOrOpt types.bool "Access to every library." null;
    };
    userChecks = { };
    hostUnits = [ "jellyfin.service" ];
  };

  vaultwarden = {
    order = 4;
    title = "Vaultwarden";
    urlExample = "https://vault.example.com";
    secret = {
      option = "adminTokenFile";
      credential = "vaultwarden-admin-token";
      example = "/run/secrets/vaultwarden-admin-token";
      what = "Vaultwarden's admin token (the plain token, not its Argon2 hash)";
    };
    # the master password is created in the user's own client; paasd only invites (docs/services.md)
    passwords = false;
    options = { };
    checks = { };
    userOptions = { };
    userChecks = { };
    hostUnits = [ "vaultwarden.service" ];
  };

  mailcow = {
    order = 5;
    title = "Mailcow";
    urlExample = "https://mail.example.com";
    secret = {
      option = "apiKeyFile";
      credential = "mailcow-api-key";
      example = "/run/secrets/mailcow-api-key";
      what = "a read-write Mailcow API key";
    };
    passwords = true;
    options.domain = mkOption {
      type = types.str;
      example = "example.com";
      description = "Mail domain the mailboxes are created in (`<user id>@<domain>`).";
    };
    checks.domain = {
      valid = d: builtins.match "[^@[:space:]]*[.][^@[:space:]]*" d != null;
      what = ''a mail domain (e.g. "example.com")'';
    };
    userOptions = {
      quota = nullOrOpt types.ints.unsigned "Mailbox quota in MiB." 2048;
      active = nullOrOpt types.bool "Whether the mailbox is active." null;
    };
    userChecks = { };
    # Mailcow runs in Docker (no NixOS service)
    hostUnits = [ ];
  };
}
