# Helpers shared by the files of the services.paas module (no options, no config): the fixed
# paths and names of the unit, the service table in its fixed order, LLDAP on the same host, the
# validation rules paasd applies (docs/spec.md), durations, and the list of secrets that become
# LoadCredential= credentials. Used as `common = import ./common.nix { inherit lib; }`.
{ lib }:

let
  # the per-service table (services.nix), and its names in the table's order
  services = import ./services.nix { inherit lib; };
  serviceNames = lib.sort (a: b: services.${a}.order < services.${b}.order) (
    builtins.attrNames services
  );

  unitName = "paasd";
  credDir = "/run/credentials/${unitName}.service";
in
rec {
  inherit services serviceNames unitName credDir;
  # the spec's name under environment.etc, and where paasd reads it
  specEtc = "paas/spec.json";
  specPath = "/etc/${specEtc}";
  stateDir = "/var/lib/paasd";
  busName = "org.paasd.Paasd1";

  # ---------------------------------------------------------------- LLDAP on the same host
  lldapLocal = config: (config.services.lldap or { }).enable or false;
  lldapSettings = config: (config.services.lldap or { }).settings or { };
  # A wildcard listen address is reached over the loopback interface.
  connectHost =
    h:
    if h == "::" || h == "0.0.0.0" || h == "" then
      "127.0.0.1"
    else if lib.hasInfix ":" h then
      "[${h}]"
    else
      h;
  lldapDefaultPassFile =
    config:
    let
      settings = lldapSettings config;
      envPassFile = (config.services.lldap or { }).environment.LLDAP_LDAP_USER_PASS_FILE or null;
    in
    if (settings.ldap_user_pass_file or null) != null then
      settings.ldap_user_pass_file
    # an environment value with a systemd specifier (e.g. "%d/pass") is only meaningful inside lldap's unit
    else if envPassFile != null && !(lib.hasInfix "%" envPassFile) then
      envPassFile
    else
      null;

  # ---------------------------------------------------------------- validation rules (docs/spec.md)
  validUserId = id: builtins.match "[a-z0-9][a-z0-9_.-]{0,63}" id != null;
  validGroupName =
    n: builtins.match "[A-Za-z0-9_.-]{1,64}" n != null && !(lib.hasPrefix "lldap_" (lib.toLower n));
  # local@domain.tld: no whitespace, one @, a dot inside the domain, at most 254 characters
  validEmail =
    e:
    builtins.stringLength e <= 254
    && builtins.match "[^@[:space:]]+@[^@[:space:].][^@[:space:]]*[.][^@[:space:]]*[^@[:space:].]" e != null;
  validHttpUrl = u: builtins.match "https?://[^[:space:]/?#]+([/?#][^[:space:]]*)?" u != null;
  validLdapUrl = u: builtins.match "ldaps?://[^[:space:]/?#]+([/?#][^[:space:]]*)?" u != null;
  validAttributeName = n: builtins.match "[A-Za-z0-9-]{1,64}" n != null;

  # durations as paasd parses them: a number of seconds or a number with a unit
  durationRe = "([0-9]+)(s|m|min|h|d|w)?";
  durationToSeconds =
    v:
    if builtins.isInt v then
      v
    else
      let
        m = builtins.match durationRe v;
        n = lib.toInt (builtins.elemAt m 0);
        unit = builtins.elemAt m 1;
        factor = {
          s = 1;
          m = 60;
          min = 60;
          h = 3600;
          d = 86400;
          w = 604800;
        };
      in
      if unit == null then n else n * factor.${unit};

  # ---------------------------------------------------------------- secrets → credentials
  # the configured services, in the table's order
  configuredServices = cfg: builtins.filter (s: cfg.${s} != null) serviceNames;

  # Every secret file of the configuration, in a fixed order: { name (the credential), option
  # (the option that names the file, for messages), path }.
  secrets =
    cfg:
    lib.optional (cfg.lldap.adminPasswordFile != null) {
      name = "lldap-admin-password";
      option = "services.paas.lldap.adminPasswordFile";
      path = cfg.lldap.adminPasswordFile;
    }
    ++ lib.concatLists (
      lib.mapAttrsToList (
        id: u:
        lib.optional (u.passwordFile != null) {
          name = "user-${id}";
          option = "services.paas.users.${id}.passwordFile";
          path = u.passwordFile;
        }
      ) cfg.users
    )
    ++ lib.optional (cfg.passwords.universalPasswordFile != null) {
      name = "universal-password";
      option = "services.paas.passwords.universalPasswordFile";
      path = cfg.passwords.universalPasswordFile;
    }
    ++ map (
      svc:
      let
        inherit (services.${svc}) secret;
      in
      {
        name = secret.credential;
        option = "services.paas.${svc}.${secret.option}";
        path = cfg.${svc}.${secret.option};
      }
    ) (configuredServices cfg);

  # the path paasd reads a credential at (what the spec holds instead of the secret)
  cred = name: "${credDir}/${name}";
}
