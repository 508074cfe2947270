# Shared node configuration of the NixOS VM tests: LLDAP and paasd on one machine.
#
# Test secrets are plain files created at run time outside the Nix store (never Nix path
# literals): the LLDAP admin password by environment.etc (a copy, mode 0440), the users' passwords by
# systemd-tmpfiles (`f` lines write a file only if it does not exist, so the test script can
# change them and a later switch-to-configuration leaves them alone).
{
  config,
  lib,
  pkgs,
  ...
}:

let
  t = import ./values.nix;
  lldapGql = pkgs.writeShellScriptBin "lldap-gql" ''
    # usage: lldap-gql 'query { ... }'  — runs a GraphQL request as LLDAP's admin, prints the JSON
    # answer, fails on HTTP errors and on GraphQL errors.
    set -eu
    jq=${pkgs.jq}/bin/jq
    curl=${pkgs.curl}/bin/curl
    token=$($jq -n --rawfile pw ${t.adminPasswordFile} '{username: "admin", password: $pw}' \
      | $curl -sSf -H 'Content-Type: application/json' --data @- ${t.httpUrl}/auth/simple/login \
      | $jq -r .token)
    answer=$($jq -n --arg q "$1" '{query: $q}' \
      | $curl -sSf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
          --data @- ${t.httpUrl}/api/graphql)
    printf '%s\n' "$answer"
    printf '%s' "$answer" | $jq -e '.errors == null' > /dev/null
  '';
in
{
  virtualisation.memorySize = 2048;

  # LLDAP (a DynamicUser, and the bootstrap script of newer nixpkgs running as it) reads the
  # admin password file through a supplementary group; paasd gets it through LoadCredential, as
  # root reads it. services.paas.lldap.adminPasswordFile defaults to ldap_user_pass_file.
  users.groups.paas-test-secrets = { };
  environment.etc."paas-test/lldap-admin" = {
    text = t.adminPassword;
    mode = "0440";
    group = "paas-test-secrets";
  };

  systemd.tmpfiles.rules = [ "d ${t.secretsDir} 0700 root root -" ] ++ lib.mapAttrsToList (
    user: pw: "f ${t.secretsDir}/${user} 0400 root root - ${pw}"
  ) t.initialPasswords;

  services.lldap = {
    enable = true;
    settings = {
      ldap_base_dn = t.baseDn;
      ldap_user_pass_file = t.adminPasswordFile;
    };
  };
  systemd.services.lldap.serviceConfig.SupplementaryGroups = [ "paas-test-secrets" ];

  # walter may use paasctl (member of services.paas.adminGroup = "wheel"), eve may not
  users.users.walter = {
    isNormalUser = true;
    extraGroups = [ "wheel" ];
  };
  users.users.eve.isNormalUser = true;

  environment.systemPackages = [
    pkgs.openldap
    pkgs.jq
    pkgs.curl
    lldapGql
  ];
}
