# The option declarations of services.paas: types, defaults (LLDAP's from services.lldap on the
# same host), descriptions and examples. The per-service options (`services.paas.<service>` and
# `services.paas.users.<id>.<service>`) are generated from the table in services.nix. The
# reference in docs/options.md is rendered from these declarations (nix/eval/options-doc.nix).
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
    types
    literalExpression
    ;
  common = import ./common.nix { inherit lib; };
  inherit (common) services serviceNames durationRe;

  lldapLocal = common.lldapLocal config;
  lldapSettings = common.lldapSettings config;
  inherit (common) connectHost;

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

  # ---------------------------------------------------------------- per service (services.nix)
  # services.paas.<service>: url, the secret, access groups, the password strategy (when paasd sets
  # passwords there) and the service's extra options
  serviceSubmodule =
    s:
    types.submodule {
      options =
        {
          url = mkOption {
            type = types.str;
            example = s.urlExample;
            description = "Base URL of ${s.title} (`http://` or `https://`).";
          };
          ${s.secret.option} = mkOption {
            type = secretFileType;
            inherit (s.secret) example;
            description = secretFileDesc s.secret.what;
          };
          groups = mkOption {
            type = types.listOf types.str;
            default = [ ];
            example = [ "family" ];
            description = ''
              LLDAP groups whose members are provisioned into ${s.title} (the "SSO access group" pattern).
              Members may include users created in LLDAP by hand.
            '';
          };
        }
        // lib.optionalAttrs s.passwords {
          passwordStrategy = mkOption {
            type = types.nullOr serviceStrategyType;
            default = null;
            example = "none";
            description = ''
              Password strategy for ${s.title}; `null` uses `services.paas.passwords.strategy` (or the user's
              `passwordStrategy`). `"none"`: ${s.title} authenticates through LDAP/SSO and paasd never sets a
              password there.
            '';
          };
        }
        // s.options;
    };

  # ---------------------------------------------------------------- groups and users
  groupModule =
    { ... }:
    {
      options = {
        displayName = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "Family members";
          description = ''
            The group's name in LLDAP; `null` uses the attribute name. May be changed later: the group is
            renamed in place.
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
    { ... }:
    {
      options =
        {
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
            example = "/run/secrets/paas/alice";
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
        }
        # users.<id>.<service>: the per-user settings of each service (services.nix, userOptions)
        // lib.mapAttrs (
          _: s:
          mkOption {
            type = types.submodule { options = s.userOptions; };
            default = { };
            description = "This user's settings in ${s.title} (used when the user gets an account there).";
          }
        ) services;
    };
in
{
  options.services.paas =
    {
      enable = mkEnableOption "paasd, which makes user accounts declarative across LLDAP and self-hosted services";

      package = mkOption {
        type = types.package;
        default = pkgs.paasd or (pkgs.callPackage ../../nix/package.nix { });
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
          default = if lldapLocal then common.lldapDefaultPassFile config else null;
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
    }
    # services.paas.<service>: one connection per entry of services.nix
    // lib.mapAttrs (
      _: s:
      mkOption {
        type = types.nullOr (serviceSubmodule s);
        default = null;
        description = ''
          Connection to ${s.title}. `null` (the default): ${s.title} is not
          managed; set: paasd provisions users into it (see `users.<id>.services` and `groups`).
        '';
      }
    ) services;
}
