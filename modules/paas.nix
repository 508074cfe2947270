# NixOS module `services.paas`: declarative user accounts in LLDAP and self-hosted services,
# reconciled by the paasd daemon. The module renders the spec (docs/spec.md) to
# /etc/paas/spec.json, passes every secret to the unit with LoadCredential= and refers to it in the
# spec by its credential path, and runs paasd as a Type=notify-reload service that is reloaded (not
# restarted) when only the spec changes.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    types
    literalExpression
    ;

  cfg = config.services.paas;
  json = pkgs.formats.json { };

  unitName = "paasd";
  credDir = "/run/credentials/${unitName}.service";
  specPath = "/etc/paas/spec.json";
  stateDir = "/var/lib/paasd";
  busName = "org.paasd.Paasd1";

  serviceTitles = {
    nextcloud = "Nextcloud";
    gitlab = "GitLab";
    jellyfin = "Jellyfin";
    vaultwarden = "Vaultwarden";
    mailcow = "Mailcow";
  };
  serviceNames = [
    "nextcloud"
    "gitlab"
    "jellyfin"
    "vaultwarden"
    "mailcow"
  ];

  # ---------------------------------------------------------------- LLDAP on the same host
  lldapCfg = config.services.lldap or { };
  lldapLocal = lldapCfg.enable or false;
  lldapSettings = lldapCfg.settings or { };
  # A wildcard listen address is reached over the loopback interface.
  connectHost =
    h:
    if h == "::" || h == "0.0.0.0" || h == "" then
      "127.0.0.1"
    else if lib.hasInfix ":" h then
      "[${h}]"
    else
      h;
  lldapEnvPassFile = lldapCfg.environment.LLDAP_LDAP_USER_PASS_FILE or null;
  lldapDefaultPassFile =
    if (lldapSettings.ldap_user_pass_file or null) != null then
      lldapSettings.ldap_user_pass_file
    # an environment value with a systemd specifier (e.g. "%d/pass") is only meaningful inside lldap's unit
    else if lldapEnvPassFile != null && !(lib.hasInfix "%" lldapEnvPassFile) then
      lldapEnvPassFile
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
  validMailDomain = d: builtins.match "[^@[:space:]]*[.][^@[:space:]]*" d != null;
  validNextcloudQuota =
    q:
    q == "none"
    || q == "default"
    || builtins.match "[0-9]+([.][0-9]+)? *(B|KB|MB|GB|TB|K|M|G|T)?" (lib.toUpper q) != null;

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

  # ---------------------------------------------------------------- option types
  secretFileType = types.either types.str types.path;
  secretFileDesc = what: ''
    Path of a file holding ${what}. Read by systemd (as root) when paasd starts and handed to it with
    `LoadCredential=`; the spec refers to the credential path, never to the secret. Must be an
    absolute path outside the Nix store: use a string (`"/run/secrets/…"`), not a Nix path literal,
    which would copy the secret into the world-readable store.
  '';

  attributesType = types.attrsOf (types.either types.str (types.listOf types.str));
  strategyType = types.enum [
    "perUser"
    "universal"
    "generated"
  ];
  serviceStrategyType = types.enum [
    "perUser"
    "universal"
    "generated"
    "none"
  ];

  nullOrOpt =
    type: description: example:
    mkOption {
      type = types.nullOr type;
      default = null;
      inherit description;
    }
    // lib.optionalAttrs (example != null) { inherit example; };

  groupsAccessOpt = service: mkOption {
    type = types.listOf types.str;
    default = [ ];
    example = [ "family" ];
    description = ''
      LLDAP groups whose members are provisioned into ${service} (the "SSO access group" pattern).
      Members may include users created in LLDAP by hand.
    '';
  };
  strategyOpt = service: mkOption {
    type = types.nullOr serviceStrategyType;
    default = null;
    example = "none";
    description = ''
      Password strategy for ${service}; `null` uses `services.paas.passwords.strategy` (or the user's
      `passwordStrategy`). `"none"`: ${service} authenticates through LDAP/SSO and paasd never sets a
      password there.
    '';
  };
  urlOpt = service: example: mkOption {
    type = types.str;
    inherit example;
    description = "Base URL of ${service} (`http://` or `https://`).";
  };

  serviceSubmodules = {
    nextcloud = types.submodule {
      options = {
        url = urlOpt "Nextcloud" "https://cloud.example.com";
        adminUser = mkOption {
          type = types.str;
          default = "root";
          example = "admin";
          description = "Nextcloud administrator account paasd uses for the OCS provisioning API.";
        };
        adminPasswordFile = mkOption {
          type = secretFileType;
          example = "/run/secrets/nextcloud-admin-pass";
          description = secretFileDesc "the password (or an app password) of `adminUser`";
        };
        groups = groupsAccessOpt "Nextcloud";
        passwordStrategy = strategyOpt "Nextcloud";
      };
    };
    gitlab = types.submodule {
      options = {
        url = urlOpt "GitLab" "https://git.example.com";
        tokenFile = mkOption {
          type = secretFileType;
          example = "/run/secrets/gitlab-admin-token";
          description = secretFileDesc "an administrator personal access token (scope `api`)";
        };
        ldapProvider = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "ldapmain";
          description = ''
            GitLab's LDAP provider name; when set, created users get `extern_uid` + `provider` so an
            LDAP login maps to the same account.
          '';
        };
        groups = groupsAccessOpt "GitLab";
        passwordStrategy = strategyOpt "GitLab";
      };
    };
    jellyfin = types.submodule {
      options = {
        url = urlOpt "Jellyfin" "http://127.0.0.1:8096";
        apiKeyFile = mkOption {
          type = secretFileType;
          example = "/run/secrets/jellyfin-api-key";
          description = secretFileDesc "a Jellyfin API key";
        };
        groups = groupsAccessOpt "Jellyfin";
        passwordStrategy = strategyOpt "Jellyfin";
      };
    };
    vaultwarden = types.submodule {
      options = {
        url = urlOpt "Vaultwarden" "https://vault.example.com";
        adminTokenFile = mkOption {
          type = secretFileType;
          example = "/run/secrets/vaultwarden-admin-token";
          description = secretFileDesc "Vaultwarden's admin token (the plain token, not its Argon2 hash)";
        };
        groups = groupsAccessOpt "Vaultwarden";
      };
    };
    mailcow = types.submodule {
      options = {
        url = urlOpt "Mailcow" "https://mail.example.com";
        apiKeyFile = mkOption {
          type = secretFileType;
          example = "/run/secrets/mailcow-api-key";
          description = secretFileDesc "a read-write Mailcow API key";
        };
        domain = mkOption {
          type = types.str;
          example = "example.com";
          description = "Mail domain the mailboxes are created in (`<user id>@<domain>`).";
        };
        groups = groupsAccessOpt "Mailcow";
        passwordStrategy = strategyOpt "Mailcow";
      };
    };
  };

  # per-user settings of each service; every field optional (null = not managed / service default)
  userServiceSubmodules = {
    nextcloud = types.submodule {
      options = {
        quota = nullOrOpt types.str "Quota, e.g. `\"10 GB\"`, `\"none\"` or `\"default\"`." "10 GB";
        groups = nullOrOpt (types.listOf types.str) "Nextcloud groups (created if missing)." [ "family" ];
        admin = nullOrOpt types.bool "Member of Nextcloud's `admin` group." null;
      };
    };
    gitlab = types.submodule {
      options = {
        admin = nullOrOpt types.bool "GitLab administrator." null;
        external = nullOrOpt types.bool "GitLab external user." null;
        canCreateGroup = nullOrOpt types.bool "May create top-level groups." null;
        projectsLimit = nullOrOpt types.ints.unsigned "Maximum number of personal projects." 10;
      };
    };
    jellyfin = types.submodule {
      options = {
        admin = nullOrOpt types.bool "Jellyfin administrator." null;
        enableAllFolders = nullOrOpt types.bool "Access to every library." null;
      };
    };
    vaultwarden = types.submodule { options = { }; };
    mailcow = types.submodule {
      options = {
        quota = nullOrOpt types.ints.unsigned "Mailbox quota in MiB." 2048;
        active = nullOrOpt types.bool "Whether the mailbox is active." null;
      };
    };
  };

  groupModule =
    { name, ... }:
    {
      options = {
        displayName = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "Family members";
          description = ''
            The group's name in LLDAP; `null` uses the attribute name `${name}`. May be changed later: the
            group is renamed in place.
          '';
        };
        attributes = mkOption {
          type = attributesType;
          default = { };
          example = {
            department = "sales";
          };
          description = "Custom group attributes; each must exist in LLDAP's group attribute schema.";
        };
      };
    };

  userModule =
    { name, ... }:
    {
      options = {
        email = mkOption {
          type = types.str;
          example = "alice@example.com";
          description = "E-mail address (required by LLDAP; unique across all users, case-insensitive).";
        };
        displayName = nullOrOpt types.str "Display name; `null`: not managed (left as it is in LLDAP)." "Alice Liddell";
        firstName = nullOrOpt types.str "First name; `null`: not managed." "Alice";
        lastName = nullOrOpt types.str "Last name; `null`: not managed." "Liddell";
        groups = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "family" ];
          description = ''
            Groups declared under `services.paas.groups` this user is a member of. Memberships in groups
            made by hand in LLDAP are left alone.
          '';
        };
        admin = mkOption {
          type = types.bool;
          default = false;
          description = "Membership of LLDAP's built-in `lldap_admin` group.";
        };
        passwordFile = mkOption {
          type = types.nullOr secretFileType;
          default = null;
          example = "/run/secrets/paas/${name}";
          description =
            secretFileDesc "the user's password (one trailing newline is stripped)"
            + ''
              `null`: paasd never sets this user's password in LLDAP.
            '';
        };
        passwordMode = mkOption {
          type = types.enum [
            "enforce"
            "initial"
          ];
          default = "enforce";
          description = ''
            `initial`: the password is set only when paasd creates the user; `enforce`: LLDAP's password is
            kept equal to the file's content (a password changed by the user is reset).
          '';
        };
        enable = mkOption {
          type = types.bool;
          default = true;
          description = "`false` disables the user everywhere (reversible); see docs/spec.md, *Disabling in LLDAP*.";
        };
        attributes = mkOption {
          type = attributesType;
          default = { };
          example = {
            phone = "+1 555 0100";
          };
          description = "Custom user attributes; each must exist in LLDAP's user attribute schema.";
        };
        passwordStrategy = mkOption {
          type = types.nullOr strategyType;
          default = null;
          description = "Per-user override of `services.paas.passwords.strategy`.";
        };
        services = mkOption {
          type = types.nullOr (types.listOf (types.enum serviceNames));
          default = null;
          example = [ "nextcloud" ];
          description = ''
            The configured services this user gets an account in; `null`: every configured service.
          '';
        };
      } // lib.mapAttrs (
        svc: t:
        mkOption {
          type = t;
          default = { };
          description = "This user's settings in ${serviceTitles.${svc}} (used when the user gets an account there).";
        }
      ) userServiceSubmodules;
    };

  # ---------------------------------------------------------------- secrets → credentials
  # name → path of every secret file, in a fixed order
  lldapPassFile = cfg.lldap.adminPasswordFile;
  secrets =
    lib.optional (lldapPassFile != null) {
      name = "lldap-admin-password";
      option = "services.paas.lldap.adminPasswordFile";
      path = lldapPassFile;
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
    ++ lib.optional (cfg.nextcloud != null) {
      name = "nextcloud-admin-password";
      option = "services.paas.nextcloud.adminPasswordFile";
      path = cfg.nextcloud.adminPasswordFile;
    }
    ++ lib.optional (cfg.gitlab != null) {
      name = "gitlab-token";
      option = "services.paas.gitlab.tokenFile";
      path = cfg.gitlab.tokenFile;
    }
    ++ lib.optional (cfg.jellyfin != null) {
      name = "jellyfin-api-key";
      option = "services.paas.jellyfin.apiKeyFile";
      path = cfg.jellyfin.apiKeyFile;
    }
    ++ lib.optional (cfg.vaultwarden != null) {
      name = "vaultwarden-admin-token";
      option = "services.paas.vaultwarden.adminTokenFile";
      path = cfg.vaultwarden.adminTokenFile;
    }
    ++ lib.optional (cfg.mailcow != null) {
      name = "mailcow-api-key";
      option = "services.paas.mailcow.apiKeyFile";
      path = cfg.mailcow.apiKeyFile;
    };
  cred = name: "${credDir}/${name}";
  # `toString` of a path value gives its name without copying it to the store
  loadCredentials = map (s: "${s.name}:${toString s.path}") secrets;

  # ---------------------------------------------------------------- the spec
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
    // nonEmpty (lib.genAttrs serviceNames (svc: dropNulls u.${svc}));

  renderGroup = name: g: dropNulls {
    inherit (g) displayName;
    attributes = if g.attributes != { } then g.attributes else null;
  };

  renderService =
    svc: secretKey: credName:
    let
      c = cfg.${svc};
    in
    lib.optionalAttrs (c != null) {
      ${svc} =
        dropNulls (builtins.removeAttrs c [ secretKey ])
        // {
          ${secretKey} = cred credName;
        };
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
    // renderService "nextcloud" "adminPasswordFile" "nextcloud-admin-password"
    // renderService "gitlab" "tokenFile" "gitlab-token"
    // renderService "jellyfin" "apiKeyFile" "jellyfin-api-key"
    // renderService "vaultwarden" "adminTokenFile" "vaultwarden-admin-token"
    // renderService "mailcow" "apiKeyFile" "mailcow-api-key";

  specFile = json.generate "paas-spec.json" spec;

  # ---------------------------------------------------------------- D-Bus policy
  dbusPolicy = pkgs.writeTextFile {
    name = "paasd-dbus-policy";
    destination = "/share/dbus-1/system.d/${busName}.conf";
    text = ''
      <?xml version="1.0"?>
      <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
       "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
      <busconfig>
        <!-- only paasd owns the name -->
        <policy user="paasd">
          <allow own="${busName}"/>
          <allow send_destination="${busName}"/>
        </policy>
        <!-- root and members of services.paas.adminGroup may call it -->
        <policy user="root">
          <allow send_destination="${busName}"/>
        </policy>
        <policy group="${cfg.adminGroup}">
          <allow send_destination="${busName}"/>
        </policy>
        <!-- everyone else is denied -->
        <policy context="default">
          <deny own="${busName}"/>
          <deny send_destination="${busName}"/>
        </policy>
      </busconfig>
    '';
  };

  # ---------------------------------------------------------------- assertions
  userList = lib.mapAttrsToList (id: u: u // { inherit id; }) cfg.users;
  configuredServices = builtins.filter (s: cfg.${s} != null) serviceNames;
  declaredGroups = builtins.attrNames cfg.groups;
  showList = l: if l == [ ] then "(none)" else lib.concatStringsSep ", " l;

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
  ]) secrets;

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
        assertion = cfg.lldap.url == null || validHttpUrl cfg.lldap.url;
        message = ''services.paas.lldap.url = "${toString cfg.lldap.url}" is not an http:// or https:// URL.'';
      }
      {
        assertion = cfg.lldap.ldapUrl != null;
        message = ''
          services.paas.lldap.ldapUrl is not set. Set it to LLDAP's LDAP address (e.g. "ldap://127.0.0.1:3890"),
          or enable services.lldap on this host to take it from services.lldap.settings.'';
      }
      {
        assertion = cfg.lldap.ldapUrl == null || validLdapUrl cfg.lldap.ldapUrl;
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
        assertion = builtins.match durationRe cfg.removalGracePeriod != null;
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
      assertion = validGroupName name;
      message = ''
        services.paas.groups."${name}": invalid group name. Use 1-64 characters of A-Z a-z 0-9 _ - . and do not
        start with "lldap_" (LLDAP's built-in groups are not managed; use users.<id>.admin for lldap_admin).'';
    }) cfg.groups
    ++ lib.concatMap (
      u:
      [
        {
          assertion = validUserId u.id;
          message = ''
            services.paas.users."${u.id}": invalid user id. Use 1-64 characters of lower-case a-z 0-9 _ - .,
            starting with a letter or a digit.'';
        }
        {
          assertion = validEmail u.email;
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
              assertion = validAttributeName a;
              message = ''services.paas.${kind}.${name}.attributes."${a}": invalid attribute name; LLDAP attribute names are 1-64 characters of A-Z a-z 0-9 and -.'';
            }) (builtins.attrNames e.attributes)
          ) entries
        )
      ) {
        users = cfg.users;
        groups = cfg.groups;
      }
    )
    ++ lib.concatMap (
      u:
      lib.optional (u.nextcloud.quota != null) {
        assertion = validNextcloudQuota u.nextcloud.quota;
        message = ''services.paas.users.${u.id}.nextcloud.quota = "${u.nextcloud.quota}" is not a Nextcloud quota: use "none", "default", a byte count or a size like "10 GB".'';
      }
    ) userList
    ++ lib.optional (cfg.mailcow != null) {
      assertion = validMailDomain cfg.mailcow.domain;
      message = ''services.paas.mailcow.domain = "${cfg.mailcow.domain}" is not a mail domain (e.g. "example.com").'';
    }
    ++ lib.mapAttrsToList (email: us: {
      assertion = false;
      message = ''
        The e-mail address "${email}" is used by more than one user (${
          showList (map (u: "services.paas.users.${u.id}.email") us)
        }); LLDAP requires unique e-mail addresses (compared case-insensitively).'';
    }) duplicateEmails
    ++ lib.concatMap (
      s:
      lib.optional (cfg.${s} != null) {
        assertion = validHttpUrl cfg.${s}.url;
        message = ''services.paas.${s}.url = "${cfg.${s}.url}" is not an http:// or https:// URL.'';
      }
    ) serviceNames
    ++ secretAssertions;

  localUnitsAfter =
    lib.optional lldapLocal "lldap.service"
    ++ lib.optionals (cfg.nextcloud != null && (config.services.nextcloud.enable or false)) [
      "nextcloud-setup.service"
      "phpfpm-nextcloud.service"
    ]
    ++ lib.optional (cfg.gitlab != null && (config.services.gitlab.enable or false)) "gitlab.service"
    ++ lib.optional (cfg.jellyfin != null && (config.services.jellyfin.enable or false)) "jellyfin.service"
    ++ lib.optional (
      cfg.vaultwarden != null && (config.services.vaultwarden.enable or false)
    ) "vaultwarden.service";
in
{
  options.services.paas = {
    enable = mkEnableOption "paasd, which makes user accounts declarative across LLDAP and self-hosted services";

    package = mkOption {
      type = types.package;
      default = pkgs.paasd or (pkgs.callPackage ../nix/package.nix { });
      defaultText = literalExpression "pkgs.paasd (added by this flake's overlays.default), else pkgs.callPackage ./nix/package.nix { }";
      description = "The package providing `paasd` and `paasctl`.";
    };

    adminGroup = mkOption {
      type = types.str;
      default = "wheel";
      example = "paas-admins";
      description = ''
        Members of this Unix group (and root) may call paasd's D-Bus API, i.e. use `paasctl status`,
        `paasctl reconcile` and `paasctl plan`; everyone else is denied by the D-Bus policy.
      '';
    };

    resyncInterval = mkOption {
      type = types.either types.ints.positive (types.strMatching durationRe);
      default = 3600;
      example = "30min";
      description = ''
        Period of the drift-repairing full reconcile (paasd adds jitter): an integer number of seconds or a
        duration string `<n>s`, `<n>m`/`<n>min`, `<n>h`, `<n>d`. It is passed to paasd as
        `--resync-interval <seconds>`; changing it restarts paasd.
      '';
    };

    lldap = {
      url = mkOption {
        type = types.nullOr types.str;
        default =
          if lldapLocal then
            "http://${connectHost lldapSettings.http_host}:${toString lldapSettings.http_port}"
          else
            null;
        defaultText = literalExpression ''
          if config.services.lldap.enable
          then "http://''${http_host}:''${toString http_port}" # from services.lldap.settings; a wildcard host becomes 127.0.0.1
          else null'';
        example = "https://ldap.example.com";
        description = "LLDAP's HTTP base URL (GraphQL at `/api/graphql`). Required.";
      };
      ldapUrl = mkOption {
        type = types.nullOr types.str;
        default =
          if lldapLocal then
            "ldap://${connectHost lldapSettings.ldap_host}:${toString lldapSettings.ldap_port}"
          else
            null;
        defaultText = literalExpression ''
          if config.services.lldap.enable
          then "ldap://''${ldap_host}:''${toString ldap_port}" # from services.lldap.settings
          else null'';
        example = "ldaps://ldap.example.com:6360";
        description = "LLDAP's LDAP listener; passwords are set with the LDAP Password Modify operation. Required.";
      };
      baseDn = mkOption {
        type = types.nullOr types.str;
        default = if lldapLocal then lldapSettings.ldap_base_dn or null else null;
        defaultText = literalExpression "if config.services.lldap.enable then config.services.lldap.settings.ldap_base_dn else null";
        example = "dc=example,dc=com";
        description = "LLDAP's base DN. Required.";
      };
      adminUsername = mkOption {
        type = types.str;
        default = if lldapLocal then lldapSettings.ldap_user_dn or "admin" else "admin";
        defaultText = literalExpression ''if config.services.lldap.enable then config.services.lldap.settings.ldap_user_dn else "admin"'';
        description = "The LLDAP account paasd logs in with (a member of `lldap_admin`); paasd never modifies it.";
      };
      adminPasswordFile = mkOption {
        type = types.nullOr secretFileType;
        default = if lldapLocal then lldapDefaultPassFile else null;
        defaultText = literalExpression ''
          if config.services.lldap.enable
          then config.services.lldap.settings.ldap_user_pass_file or
               config.services.lldap.environment.LLDAP_LDAP_USER_PASS_FILE (unless it uses a % specifier)
          else null'';
        example = "/run/secrets/lldap-admin-password";
        description = secretFileDesc "the password of `adminUsername`" + "Required.";
      };
      disabledGroup = mkOption {
        type = types.str;
        default = "paas_disabled";
        description = ''
          The LLDAP group disabled users are put in (created by paasd). Make SSO front ends and LDAP clients
          deny its members, e.g. the LDAP user filter `(!(memberOf=cn=paas_disabled,ou=groups,<baseDn>))`.
        '';
      };
      timeoutSeconds = mkOption {
        type = types.ints.between 1 600;
        default = 30;
        description = "Per-request timeout towards LLDAP, in seconds.";
      };
    };

    removal = mkOption {
      type = types.enum [
        "disable"
        "delete"
        "keep"
      ];
      default = "disable";
      description = ''
        What happens to a user or group **paasd created** that is no longer declared: `disable` (the user is
        put in `lldap.disabledGroup` and loses its managed memberships; a group loses its managed members),
        `delete`, or `keep`. Users and groups made by hand are never touched.
      '';
    };

    removalGracePeriod = mkOption {
      type = types.str;
      default = "0";
      example = "30d";
      description = ''
        With `removal = "delete"`: a removed user is disabled first and deleted once it has been gone this
        long. A duration: `"0"`, `"90s"`, `"12h"`, `"30d"`.
      '';
    };

    removalGuard.maxPercent = mkOption {
      type = types.ints.between 0 100;
      default = 25;
      description = ''
        Refuse to disable or delete more than this share (in %) of the managed users in one run
        (`paasctl apply --force` overrides). Does not apply when 3 or fewer users would be removed.
        A typo in configuration.nix must not wipe out a company.
      '';
    };

    passwords = {
      strategy = mkOption {
        type = strategyType;
        default = "perUser";
        description = ''
          Deployment-wide password strategy for services with their own passwords: `perUser` (each
          user's `passwordFile`), `universal` (`universalPasswordFile` for every user and service) or
          `generated` (a unique random password per user and service, kept 0600 in paasd's state
          directory, shown by `paasctl credentials show USER [SERVICE]` as root). LLDAP always takes the
          user's `passwordFile` (or the universal file under `universal`).
        '';
      };
      universalPasswordFile = mkOption {
        type = types.nullOr secretFileType;
        default = null;
        example = "/run/secrets/paas-universal-password";
        description = secretFileDesc "the password every user gets under the `universal` strategy";
      };
    };

    groups = mkOption {
      type = types.attrsOf (types.submodule groupModule);
      default = { };
      example = literalExpression ''
        {
          family = { };
          media = { displayName = "Media"; };
        }
      '';
      description = ''
        LLDAP groups managed by paasd. The attribute name is the name users refer to in
        `users.<id>.groups` (and the LLDAP group name unless `displayName` says otherwise).
      '';
    };

    users = mkOption {
      type = types.attrsOf (types.submodule userModule);
      default = { };
      example = literalExpression ''
        {
          alice = {
            email = "alice@example.com";
            displayName = "Alice Liddell";
            groups = [ "family" ];
            admin = true;
            passwordFile = "/run/secrets/paas/alice";
          };
        }
      '';
      description = "Users managed by paasd; the attribute name is the LLDAP user id.";
    };
  } // lib.mapAttrs (
    svc: t:
    mkOption {
      type = types.nullOr t;
      default = null;
      description = ''
        Connection to ${serviceTitles.${svc}}. `null` (the default): ${serviceTitles.${svc}} is not
        managed; set: paasd provisions users into it (see `users.<id>.services` and `groups`).
      '';
    }
  ) serviceSubmodules;

  config = mkIf cfg.enable {
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

    environment.etc."paas/spec.json".source = specFile;
    environment.systemPackages = [ cfg.package ];

    services.dbus.packages = [ dbusPolicy ];

    users.users.paasd = {
      isSystemUser = true;
      group = "paasd";
      description = "paasd account provisioning daemon";
    };
    users.groups.paasd = { };

    systemd.services.paasd = {
      description = "paasd: declarative accounts in LLDAP and self-hosted services";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ] ++ lib.optional lldapLocal "lldap.service";
      after = [ "network-online.target" ] ++ localUnitsAfter;
      # A changed spec only reloads paasd (SIGHUP, Type=notify-reload); a changed set of credentials
      # (LoadCredential= is part of the unit) restarts it, since systemd loads credentials at start.
      reloadTriggers = [ specFile ];
      serviceConfig = {
        Type = "notify-reload";
        ExecStart = lib.escapeShellArgs [
          (lib.getExe' cfg.package "paasd")
          "--spec"
          specPath
          "--state-dir"
          stateDir
          "--resync-interval"
          (toString (durationToSeconds cfg.resyncInterval))
        ];
        User = "paasd";
        Group = "paasd";
        StateDirectory = "paasd";
        StateDirectoryMode = "0700";
        LoadCredential = loadCredentials;
        Restart = "on-failure";
        RestartSec = "5s";
        WatchdogSec = "60s";
        TimeoutStopSec = "30s";

        # sandboxing
        UMask = "0077";
        NoNewPrivileges = true;
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
        ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
          "~@resources"
        ];
      };
    };
  };
}
