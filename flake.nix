{
  description = "paasd: declarative user accounts across LLDAP and self-hosted services (daemon, CLI, NixOS module)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      overlays.default = final: _prev: { paasd = final.callPackage ./nix/package.nix { }; };

      packages = forAllSystems (pkgs: {
        paasd = pkgs.callPackage ./nix/package.nix { };
        default = self.packages.${pkgs.system}.paasd;
      });

      # The module's `package` option defaults to pkgs.paasd when the overlay is applied and to
      # `pkgs.callPackage ./nix/package.nix { }` otherwise, so it also works imported on its own.
      nixosModules = {
        paas = ./modules/paas; # a path: error messages name the files
        default = self.nixosModules.paas;
      };

      checks = forAllSystems (
        pkgs:
        let
          testArgs = {
            paasModule = self.nixosModules.default;
            paasPackage = self.packages.${pkgs.system}.paasd;
          };
          vmTest =
            file:
            pkgs.testers.runNixOSTest {
              imports = [ file ];
              _module.args = testArgs;
            };
          evalAssertions = import ./nix/tests/eval-assertions.nix {
            inherit lib;
            inherit (pkgs) runCommand;
            paasModule = self.nixosModules.default;
            nixosEval =
              modules:
              nixpkgs.lib.nixosSystem {
                inherit (pkgs) system;
                inherit modules;
              };
          };
        in
        {
          package = self.packages.${pkgs.system}.paasd;
          eval-assertions = evalAssertions.check;
          provisioning = vmTest ./nix/tests/provisioning.nix;
          nextcloud = vmTest ./nix/tests/nextcloud.nix;
        }
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [
            cargo
            rustc
            clippy
            rustfmt
            rust-analyzer
            openldap # slapd and ldap* tools for the LDAP tests
            dbus # dbus-daemon for the D-Bus API tests
            jq
            nixfmt-rfc-style
          ];
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt-rfc-style);
    };
}
