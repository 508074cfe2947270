# The evaluation-time checks of services.paas (`nixos-rebuild` fails before anything is built):
# every rule paasd would reject the spec for, plus secrets that would leak into the Nix store.
# Each assertion names the option at fault and says what to do; the warnings flag settings that
# are ignored. The per-service checks (URL, secret path, the table's `checks` and `userChecks`)
# are generated from services.nix. nix/tests/eval-assertions.nix tests each message.
{
  config,
  lib,
  ...
}:

let
  cfg = config.services.paas;
  common = import ./common.nix { inherit lib; };
  inherit (common) services serviceNames;

  userList = lib.mapAttrsToList (id: u: u // { inherit id; }) cfg.users;
  configuredServices = common.configuredServices cfg;
  declaredGroups = builtins.attrNames cfg.groups;
  showList = l: if l == [ ] then "(none)" else lib.concatStringsSep ", " l;

  # a secret file must be an absolute path outside the Nix store, given as a string
  secretAssertions = lib.concatMap (s: [
    {
      assertion = !(builtins.isPath s.path);
      message = ''
        ${s.option} is a Nix path literal (${toString s.path}): it would be copied into the
        world-readable Nix store. Give the absolute path as a string instead, e.g. "/run/secrets/${s.name}",
        and keep the file out of your configuration repository.'';
    }
    {
      assertion = builtins.isPath s.path || lib.hasPrefix "/" (toString s.path);
      message = ''${s.option} = "${toString s.path}" is not an absolute path.'';
    }
    {
      assertion = builtins.isPath s.path || !(lib.hasPrefix "${builtins.storeDir}/" (toString s.path));
      message = ''
        ${s.option} = "${toString s.path}" is in the Nix store, which is world-readable: a secret must
        not be there. Point it to a file outside the store (e.g. one provided by agenix or sops-nix under /run).'';
    }
  ]) (common.secrets cfg);

  # a `checks`/`userChecks` rule of services.nix: `<option> = "<value>" is not <what>.`
  fieldAssertion =
    option: value: check:
    {
      assertion = check.valid value;
      message = ''${option} = "${toString value}" is not ${check.what}.'';
    };

  # e-mails used more than once (case-insensitive) → the user ids using each
  emailOwners = lib.groupBy (u: lib.toLower u.email) userList;
  duplicateEmails = lib.filterAttrs (_: us: builtins.length us > 1) emailOwners;

  universalUsers = builtins.filter (
    u: (if u.passwordStrategy != null then u.passwordStrategy else cfg.passwords.strategy) == "universal"
  ) userList;
  universalServices = builtins.filter (
    s: cfg.${s} != null && (cfg.${s}.passwordStrategy or null) == "universal"
  ) serviceNames;

  paasAssertions =
    [
      {
        assertion = cfg.lldap.url != null;
        message = ''
          services.paas.lldap.url is not set. Set it to LLDAP's HTTP address (e.g. "http://127.0.0.1:17170"),
          or enable services.lldap on this host to take it from services.lldap.settings.'';
      }
      {
        assertion = cfg.lldap.url == null || common.validHttpUrl cfg.lldap.url;
        message = ''services.paas.lldap.url = "${toString cfg.lldap.url}" is not an http:// or https:// URL.'';
      }
      {
        assertion = cfg.lldap.ldapUrl != null;
        message = ''
          services.paas.lldap.ldapUrl is not set. Set it to LLDAP's LDAP address (e.g. "ldap://127.0.0.1:3890"),
          or enable services.lldap on this host to take it from services.lldap.settings.'';
      }
      {
        assertion = cfg.lldap.ldapUrl == null || common.validLdapUrl cfg.lldap.ldapUrl;
        message = ''services.paas.lldap.ldapUrl = "${toString cfg.lldap.ldapUrl}" is not an ldap:// or ldaps:// URL.'';
      }
      {
        assertion = cfg.lldap.baseDn != null;
        message = ''services.paas.lldap.baseDn is not set (e.g. "dc=example,dc=com"), and services.lldap is not enabled on this host to take it from.'';
      }
      {
        assertion = cfg.lldap.adminPasswordFile != null;
        message = ''
          services.paas.lldap.adminPasswordFile is not set. Point it to a file holding the password of
          services.paas.lldap.adminUsername ("${cfg.lldap.adminUsername}"), or set
          services.lldap.settings.ldap_user_pass_file on this host to take it from there.'';
      }
      {
        assertion = !(cfg.users ? ${cfg.lldap.adminUsername});
        message = ''
          services.paas.users.${cfg.lldap.adminUsername} is the account paasd logs in with
          (services.paas.lldap.adminUsername), which paasd never modifies. Remove it from services.paas.users.'';
      }
      {
        assertion = builtins.match common.durationRe cfg.removalGracePeriod != null;
        message = ''services.paas.removalGracePeriod = "${cfg.removalGracePeriod}" is not a duration: use "0" or a number followed by s, m, h, d or w ("90s", "12h", "30d").'';
      }
      {
        assertion = universalUsers == [ ] && universalServices == [ ] || cfg.passwords.universalPasswordFile != null;
        message = ''
          The "universal" password strategy is used (${
            showList (
              (lib.optional (cfg.passwords.strategy == "universal") "services.paas.passwords.strategy")
              ++ map (u: "services.paas.users.${u.id}.passwordStrategy") (
                builtins.filter (u: u.passwordStrategy == "universal") universalUsers
              )
              ++ map (s: "services.paas.${s}.passwordStrategy") universalServices
            )
          }) but services.paas.passwords.universalPasswordFile is not set.'';
      }
    ]
    ++ lib.mapAttrsToList (name: _: {
      assertion = common.validGroupName name;
      message = ''
        services.paas.groups."${name}": invalid group name. Use 1-64 characters of A-Z a-z 0-9 _ - . and do not
        start with "lldap_" (LLDAP's built-in groups are not managed; use users.<id>.admin for lldap_admin).'';
    }) cfg.groups
    ++ lib.concatMap (
      u:
      [
        {
          assertion = common.validUserId u.id;
          message = ''
            services.paas.users."${u.id}": invalid user id. Use 1-64 characters of lower-case a-z 0-9 _ - .,
            starting with a letter or a digit.'';
        }
        {
          assertion = common.validEmail u.email;
          message = ''services.paas.users.${u.id}.email = "${u.email}" is not an e-mail address.'';
        }
      ]
      ++ map (g: {
        assertion = cfg.groups ? ${g};
        message = ''
          services.paas.users.${u.id}.groups: group "${g}" is not declared under services.paas.groups
          (declared: ${showList declaredGroups}). Declare services.paas.groups.${g} = { }; or remove it from the list.'';
      }) u.groups
      ++ map (s: {
        assertion = cfg.${s} != null;
        message = ''
          services.paas.users.${u.id}.services lists "${s}", but services.paas.${s} is not configured
          (configured: ${showList configuredServices}). Configure services.paas.${s} or remove "${s}" from the list.'';
      }) (if u.services == null then [ ] else u.services)
    ) userList
    ++ lib.concatLists (
      lib.mapAttrsToList (
        kind: entries:
        lib.concatLists (
          lib.mapAttrsToList (
            name: e:
            map (a: {
              assertion = common.validAttributeName a;
              message = ''services.paas.${kind}.${name}.attributes."${a}": invalid attribute name; LLDAP attribute names are 1-64 characters of A-Z a-z 0-9 and -.'';
            }) (builtins.attrNames e.attributes)
          ) entries
        )
      ) {
        users = cfg.users;
        groups = cfg.groups;
      }
    )
    # per-user service settings (`userChecks` of services.nix), where set
    ++ lib.concatMap (
      u:
      lib.concatMap (
        svc:
        lib.concatLists (
          lib.mapAttrsToList (
            field: check:
            lib.optional (u.${svc}.${field} != null) (
              fieldAssertion "services.paas.users.${u.id}.${svc}.${field}" u.${svc}.${field} check
            )
          ) services.${svc}.userChecks
        )
      ) serviceNames
    ) userList
    # connection options of the configured services (`checks` of services.nix)
    ++ lib.concatMap (
      svc:
      lib.mapAttrsToList (
        field: check: fieldAssertion "services.paas.${svc}.${field}" cfg.${svc}.${field} check
      ) services.${svc}.checks
    ) configuredServices
    ++ lib.mapAttrsToList (email: us: {
      assertion = false;
      message = ''
        The e-mail address "${email}" is used by more than one user (${
          showList (map (u: "services.paas.users.${u.id}.email") us)
        }); LLDAP requires unique e-mail addresses (compared case-insensitively).'';
    }) duplicateEmails
    # every configured service's URL
    ++ map (svc: {
      assertion = common.validHttpUrl cfg.${svc}.url;
      message = ''services.paas.${svc}.url = "${cfg.${svc}.url}" is not an http:// or https:// URL.'';
    }) configuredServices
    ++ secretAssertions;
in
{
  config = lib.mkIf cfg.enable {
    assertions = paasAssertions;
    warnings =
      lib.optional (!(config.users.groups ? ${cfg.adminGroup})) ''
        services.paas.adminGroup = "${cfg.adminGroup}" is not declared in users.groups: unless the group
        exists on the host, nobody but root can use paasctl status/reconcile/plan.''
      ++ lib.concatMap (
        u:
        map (
          svc:
          "services.paas.users.${u.id}.${svc} is set, but services.paas.${svc} is not configured: these settings are ignored."
        ) (builtins.filter (svc: cfg.${svc} == null && lib.filterAttrs (_: v: v != null) u.${svc} != { }) serviceNames)
      ) userList;
  };
}
