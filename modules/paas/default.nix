# NixOS module `services.paas`: declarative user accounts in LLDAP and self-hosted services,
# reconciled by the paasd daemon. The module renders the spec (docs/spec.md) to
# /etc/paas/spec.json, passes every secret to the unit with LoadCredential= and refers to it in the
# spec by its credential path, and runs paasd as a Type=notify-reload service that is reloaded (not
# restarted) when only the spec changes.
#
# The files of this directory:
#   default.nix     this entry point: the imports, and paasctl on the PATH
#   options.nix     every option declaration (types, defaults, descriptions, examples)
#   services.nix    the table of services (Nextcloud, GitLab, …) the per-service options,
#                   credentials, checks and spec sections are generated from
#   spec.nix        /etc/paas/spec.json, rendered from the options
#   unit.nix        the systemd service (credentials, ordering, sandboxing), the D-Bus policy,
#                   the paasd user and group
#   assertions.nix  evaluation-time checks and warnings
#   common.nix      helpers shared by the files above (paths, validation rules, the secrets)
{
  config,
  lib,
  ...
}:

{
  imports = [
    ./options.nix
    ./spec.nix
    ./unit.nix
    ./assertions.nix
  ];

  config = lib.mkIf config.services.paas.enable {
    environment.systemPackages = [ config.services.paas.package ];
  };
}
