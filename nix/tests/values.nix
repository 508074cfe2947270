# Constants shared by the VM tests' Nix code (the test scripts get them interpolated).
# These passwords exist only inside the test VMs.
rec {
  baseDn = "dc=example,dc=com";
  httpUrl = "http://127.0.0.1:17170";
  ldapUrl = "ldap://127.0.0.1:3890";
  adminPassword = "lldap-admin-Secret-8351";
  adminPasswordFile = "/etc/paas-test/lldap-admin";
  secretsDir = "/var/lib/paas-test-secrets";
  initialPasswords = {
    alice = "alice-first-Passw0rd-2716";
    bob = "bob-first-Passw0rd-9042";
  };
  # written by the test scripts over the initial ones
  secondPasswords = {
    alice = "alice-second-Passw0rd-5530";
    bob = "bob-second-Passw0rd-1187";
  };
}
