# The paasd package: the `paasd` daemon and the `paasctl` CLI.
{
  lib,
  rustPlatform,
}:

let
  cargoToml = lib.importTOML ../Cargo.toml;
  fs = lib.fileset;
in
rustPlatform.buildRustPackage {
  pname = "paasd";
  inherit (cargoToml.package) version;

  # Only what Cargo needs: changes to the Nix files, docs or CI do not rebuild the package.
  # tests/ is needed because tests/doubles is a workspace member (and a dev-dependency).
  src = fs.toSource {
    root = ../.;
    fileset = fs.difference (fs.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      ../tests
      (fs.maybeMissing ../benches)
      (fs.maybeMissing ../examples)
      (fs.maybeMissing ../build.rs)
    ]) (fs.maybeMissing ../tests/doubles/target);
  };

  cargoLock.lockFile = ../Cargo.lock;

  # Build (and, if enabled, test) only the paasd crate, not the test-doubles member.
  cargoBuildFlags = [
    "-p"
    "paasd"
  ];
  cargoTestFlags = [
    "-p"
    "paasd"
  ];

  # The test suite needs slapd, a dbus-daemon and the vendor API descriptions that live outside
  # this repository (../shared/contracts); CI runs it with those in place. The NixOS VM tests in
  # nix/tests exercise the built package instead.
  doCheck = false;

  meta = {
    description = cargoToml.package.description;
    longDescription = ''
      paasd makes user accounts declarative across LLDAP and self-hosted services (Nextcloud,
      GitLab, Jellyfin, Vaultwarden, Mailcow): it reconciles a JSON spec, rendered by the NixOS
      module services.paas, idempotently and keeps them in sync. paasctl shows its status.
    '';
    license = with lib.licenses; [
      mit
      asl20
    ];
    mainProgram = "paasd";
    platforms = lib.platforms.linux;
  };
}
