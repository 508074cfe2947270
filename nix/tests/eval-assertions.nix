# Evaluation-only test: configurations services.paas must reject at evaluation time
# (`nixos-rebuild` fails before anything is built), each with the message it must show.
#
#   nixosEval: a function from a list of NixOS modules to the evaluated system
#              (e.g. modules: import <nixpkgs/nixos/lib/eval-config.nix> { inherit modules; system = ...; })
#   paasModule: the services.paas module
#
# Returns { results; failed; passed; report; check }: `check` is a derivation (for flake checks)
# that only evaluates when every case behaves as expected, and otherwise fails with the list of
# unexpected results.
{
  lib,
  nixosEval,
  paasModule,
  runCommand ? null,
}:

let
  base =
    { ... }:
    {
      system.stateVersion = "24.11";
      boot.isContainer = true;
      documentation.nixos.enable = false;
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
        groups.family = { };
        users.alice = {
          email = "alice@example.com";
          groups = [ "family" ];
          passwordFile = "/run/secrets/paas/alice";
        };
      };
    };

  evalWith = module: nixosEval [
    paasModule
    base
    module
  ];

  failedMessages =
    sys: map (a: a.message) (builtins.filter (a: !a.assertion) sys.config.assertions);

  # a case passes when some failed assertion contains every expected fragment
  expectRejected = name: module: fragments: {
    inherit name;
    kind = "assertion";
    check =
      let
        msgs = failedMessages (evalWith module);
        matches = builtins.filter (m: builtins.all (f: lib.hasInfix f m) fragments) msgs;
      in
      {
        ok = matches != [ ];
        detail =
          if matches != [ ] then
            builtins.head matches
          else
            "expected a failed assertion containing ${builtins.toJSON fragments}, got ${builtins.toJSON msgs}";
      };
  };

  # a case passes when the option's type check throws while the value is evaluated
  expectTypeError = name: module: get: {
    inherit name;
    kind = "type";
    check =
      let
        r = builtins.tryEval (builtins.deepSeq (get (evalWith module).config) true);
      in
      {
        ok = !r.success;
        detail = if r.success then "the definition was accepted" else "rejected by the option type";
      };
  };

  # a case passes when some warning contains every expected fragment
  expectWarning = name: module: fragments: {
    inherit name;
    kind = "warning";
    check =
      let
        ws = (evalWith module).config.warnings;
        matches = builtins.filter (w: builtins.all (f: lib.hasInfix f w) fragments) ws;
      in
      {
        ok = matches != [ ];
        detail =
          if matches != [ ] then
            builtins.head matches
          else
            "expected a warning containing ${builtins.toJSON fragments}, got ${builtins.toJSON ws}";
      };
  };

  expectAccepted = name: module: {
    inherit name;
    kind = "accepted";
    check =
      let
        msgs = failedMessages (evalWith module);
      in
      {
        ok = msgs == [ ];
        detail = if msgs == [ ] then "no failed assertion" else "unexpected: ${builtins.toJSON msgs}";
      };
  };

  cases = [
    (expectAccepted "the base configuration is accepted" { })

    (expectRejected "unknown group in users.<id>.groups"
      { services.paas.users.alice.groups = [ "admins" ]; }
      [
        "services.paas.users.alice.groups"
        ''group "admins" is not declared''
      ]
    )

    (expectRejected "duplicate e-mail (case-insensitive)"
      {
        services.paas.users.bob = {
          email = "Alice@Example.com";
        };
      }
      [
        "is used by more than one user"
        "services.paas.users.alice.email"
        "services.paas.users.bob.email"
      ]
    )

    (expectRejected "invalid e-mail"
      { services.paas.users.alice.email = lib.mkForce "alice-at-example.com"; }
      [ ''services.paas.users.alice.email = "alice-at-example.com" is not an e-mail address'' ]
    )

    (expectRejected "invalid user id (upper case)"
      { services.paas.users.Bob.email = "bob@example.com"; }
      [ ''services.paas.users."Bob": invalid user id'' ]
    )

    (expectRejected "invalid group name (built-in lldap_ prefix)"
      { services.paas.groups.lldap_admin = { }; }
      [ ''services.paas.groups."lldap_admin": invalid group name'' ]
    )

    (expectRejected "invalid group name (space)"
      { services.paas.groups."media people" = { }; }
      [ ''services.paas.groups."media people": invalid group name'' ]
    )

    (expectRejected "a user asks for a service that is not configured"
      { services.paas.users.alice.services = [ "nextcloud" ]; }
      [
        "services.paas.users.alice.services"
        ''lists "nextcloud", but services.paas.nextcloud is not configured''
      ]
    )

    (expectRejected "universal strategy without universalPasswordFile"
      { services.paas.passwords.strategy = "universal"; }
      [ "services.paas.passwords.universalPasswordFile is not set" ]
    )

    (expectRejected "per-user universal strategy without universalPasswordFile"
      { services.paas.users.alice.passwordStrategy = "universal"; }
      [
        "services.paas.users.alice.passwordStrategy"
        "universalPasswordFile is not set"
      ]
    )

    (expectRejected "secret given as a Nix path literal"
      { services.paas.users.alice.passwordFile = lib.mkForce ./eval-assertions.nix; }
      [
        "services.paas.users.alice.passwordFile is a Nix path literal"
        "world-readable Nix store"
      ]
    )

    (expectRejected "secret inside the Nix store"
      {
        services.paas.nextcloud = {
          url = "http://127.0.0.1";
          adminPasswordFile = "${builtins.storeDir}/0000000000000000000000000000000-nextcloud-pass";
        };
      }
      [
        "services.paas.nextcloud.adminPasswordFile"
        "is in the Nix store"
      ]
    )

  ]
  # each service's secret file is checked like every other secret (written out here, not taken from
  # the module's table of services, so a service dropped from the table fails the test)
  ++ map (
    c:
    expectRejected "relative secret path of ${c.service}"
      {
        services.paas.${c.service} = {
          url = "https://${c.service}.example.com";
          ${c.option} = "secrets/${c.service}";
        } // c.extra;
      }
      [ ''services.paas.${c.service}.${c.option} = "secrets/${c.service}" is not an absolute path'' ]
  ) [
    { service = "nextcloud"; option = "adminPasswordFile"; extra = { }; }
    { service = "gitlab"; option = "tokenFile"; extra = { }; }
    { service = "jellyfin"; option = "apiKeyFile"; extra = { }; }
    { service = "vaultwarden"; option = "adminTokenFile"; extra = { }; }
    { service = "mailcow"; option = "apiKeyFile"; extra.domain = "example.com"; }
  ]
  ++ [
    (expectRejected "relative secret path"
      { services.paas.passwords.universalPasswordFile = "secrets/universal"; }
      [ ''services.paas.passwords.universalPasswordFile = "secrets/universal" is not an absolute path'' ]
    )

    (expectRejected "no LLDAP admin password file (no local LLDAP)"
      {
        services.lldap.enable = lib.mkForce false;
        services.paas.lldap = {
          url = "https://ldap.example.com";
          ldapUrl = "ldaps://ldap.example.com:6360";
          baseDn = "dc=example,dc=com";
        };
      }
      [ "services.paas.lldap.adminPasswordFile is not set" ]
    )

    (expectRejected "no LLDAP URL (no local LLDAP)"
      { services.lldap.enable = lib.mkForce false; }
      [ "services.paas.lldap.url is not set" ]
    )

    (expectRejected "invalid LDAP URL"
      { services.paas.lldap.ldapUrl = "http://127.0.0.1:3890"; }
      [ "services.paas.lldap.ldapUrl" "is not an ldap:// or ldaps:// URL" ]
    )

    (expectRejected "the login account declared as a managed user"
      { services.paas.users.admin.email = "admin@example.com"; }
      [ "services.paas.users.admin is the account paasd logs in with" ]
    )

    (expectRejected "invalid removalGracePeriod"
      {
        services.paas.removal = "delete";
        services.paas.removalGracePeriod = "2 weeks";
      }
      [ ''services.paas.removalGracePeriod = "2 weeks" is not a duration'' ]
    )

    (expectRejected "invalid e-mail (no dot in the domain)"
      { services.paas.users.alice.email = lib.mkForce "alice@localhost"; }
      [ ''services.paas.users.alice.email = "alice@localhost" is not an e-mail address'' ]
    )

    (expectRejected "invalid group name (built-in prefix, any case)"
      { services.paas.groups.LLDAP_Admin = { }; }
      [ ''services.paas.groups."LLDAP_Admin": invalid group name'' ]
    )

    (expectRejected "invalid custom attribute name"
      { services.paas.users.alice.attributes."phone number" = "1"; }
      [ ''services.paas.users.alice.attributes."phone number": invalid attribute name'' ]
    )

    (expectRejected "invalid Nextcloud quota"
      {
        services.paas.nextcloud = {
          url = "http://127.0.0.1";
          adminPasswordFile = "/run/secrets/nextcloud";
        };
        services.paas.users.alice.nextcloud.quota = "lots";
      }
      [ ''services.paas.users.alice.nextcloud.quota = "lots" is not a Nextcloud quota'' ]
    )

    (expectRejected "invalid Mailcow domain"
      {
        services.paas.mailcow = {
          url = "https://mail.example.com";
          apiKeyFile = "/run/secrets/mailcow";
          domain = "localhost";
        };
      }
      [ ''services.paas.mailcow.domain = "localhost" is not a mail domain'' ]
    )

    (expectAccepted "every service configured, durations and quotas in the accepted forms" {
      services.paas = {
        removal = "delete";
        removalGracePeriod = "30d";
        resyncInterval = "15min";
        passwords = {
          strategy = "generated";
          universalPasswordFile = "/run/secrets/universal";
        };
        nextcloud = {
          url = "https://cloud.example.com";
          adminPasswordFile = "/run/secrets/nextcloud";
          groups = [ "family" ];
        };
        gitlab = {
          url = "https://git.example.com";
          tokenFile = "/run/secrets/gitlab";
          ldapProvider = "ldapmain";
          passwordStrategy = "none";
        };
        jellyfin = {
          url = "http://127.0.0.1:8096";
          apiKeyFile = "/run/secrets/jellyfin";
        };
        vaultwarden = {
          url = "https://vault.example.com";
          adminTokenFile = "/run/secrets/vaultwarden";
        };
        mailcow = {
          url = "https://mail.example.com";
          apiKeyFile = "/run/secrets/mailcow";
          domain = "example.com";
        };
        users.alice = {
          services = [
            "nextcloud"
            "mailcow"
          ];
          attributes.phone-number = "+1 555 0100";
          nextcloud = {
            quota = "10 GB";
            admin = true;
          };
          gitlab.projectsLimit = 5;
          mailcow.quota = 2048;
        };
      };
    })

    (expectWarning "settings for a service that is not configured"
      { services.paas.users.alice.nextcloud.quota = "5 GB"; }
      [ "services.paas.users.alice.nextcloud is set, but services.paas.nextcloud is not configured" ]
    )

    (expectWarning "an admin group that is not declared"
      { services.paas.adminGroup = "paas-admins"; }
      [ ''services.paas.adminGroup = "paas-admins" is not declared in users.groups'' ]
    )

    (expectTypeError "invalid passwordMode"
      { services.paas.users.alice.passwordMode = "sometimes"; }
      (c: c.services.paas.users.alice.passwordMode)
    )

    (expectTypeError "invalid resyncInterval"
      { services.paas.resyncInterval = "every hour"; }
      (c: c.services.paas.resyncInterval)
    )
  ];

  results = map (c: {
    inherit (c) name kind;
    inherit (c.check) ok detail;
  }) cases;
  failed = builtins.filter (r: !r.ok) results;
  report = lib.concatMapStrings (
    r: "${if r.ok then "ok  " else "FAIL"} ${r.name}: ${r.detail}\n"
  ) results;
in
{
  inherit results failed report;
  passed = failed == [ ];
  check =
    if failed != [ ] then
      throw "services.paas evaluation test failed:\n${report}"
    else
      runCommand "paas-eval-assertions" { inherit report; } ''
        printf '%s' "$report" > $out
      '';
}
