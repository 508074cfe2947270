# The spec paasd reads (docs/spec.md), rendered from services.paas to /etc/paas/spec.json.
# Options left null are omitted; every secret is replaced by the path of its credential
# (/run/credentials/paasd.service/<name>, see common.nix), never by its content. The service
# sections are rendered from the table in services.nix.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.paas;
  common = import ./common.nix { inherit lib; };
  inherit (common) services serviceNames cred;
  json = pkgs.formats.json { };

  dropNulls = lib.filterAttrs (_: v: v != null);
  nonEmpty = lib.filterAttrs (_: v: v != { });

  renderUser =
    id: u:
    dropNulls {
      inherit (u)
        email
        displayName
        firstName
        lastName
        groups
        admin
        enable
        passwordStrategy
        services
        ;
      passwordFile = if u.passwordFile != null then cred "user-${id}" else null;
      passwordMode = if u.passwordFile != null then u.passwordMode else null;
      attributes = if u.attributes != { } then u.attributes else null;
    }
    # the user's per-service settings, where any is set
    // nonEmpty (lib.genAttrs serviceNames (svc: dropNulls u.${svc}));

  renderGroup = name: g: dropNulls {
    inherit (g) displayName;
    attributes = if g.attributes != { } then g.attributes else null;
  };

  # a configured service: its connection options, the secret replaced by its credential path
  renderService =
    svc:
    let
      c = cfg.${svc};
      inherit (services.${svc}) secret;
    in
    dropNulls (builtins.removeAttrs c [ secret.option ])
    // {
      ${secret.option} = cred secret.credential;
    };

  spec =
    {
      version = 1;
      lldap = dropNulls {
        inherit (cfg.lldap)
          url
          ldapUrl
          baseDn
          adminUsername
          disabledGroup
          timeoutSeconds
          ;
        adminPasswordFile = cred "lldap-admin-password";
      };
      inherit (cfg) removal removalGracePeriod;
      removalGuard = {
        inherit (cfg.removalGuard) maxPercent;
      };
      passwords = dropNulls {
        inherit (cfg.passwords) strategy;
        universalPasswordFile =
          if cfg.passwords.universalPasswordFile != null then cred "universal-password" else null;
      };
      groups = lib.mapAttrs renderGroup cfg.groups;
      users = lib.mapAttrs renderUser cfg.users;
    }
    // lib.genAttrs (common.configuredServices cfg) renderService;
in
{
  # unit.nix reloads paasd when this file changes
  config = lib.mkIf cfg.enable {
    environment.etc.${common.specEtc}.source = json.generate "paas-spec.json" spec;
  };
}
