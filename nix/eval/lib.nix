# Offline evaluation harness for the NixOS module, the VM tests and the flake outputs.
#
# `tree` is an assembled nixpkgs-shaped directory: `lib/` and `nixos/` of a real nixpkgs and a
# *fake* package set (`stub-pkgs.nix`, `default.nix`) whose packages are trivial derivations.
# Everything NixOS evaluates (option types, merging, assertions, systemd unit rendering,
# environment.etc, nixos/lib/testing) is the real code; package contents are not.
# See docs/nixos.md, "How the Nix code is checked".
{ tree, repo }:

let
  lib = import (tree + "/lib");
  system = "x86_64-linux";
  stubPkgs = import (tree + "/stub-pkgs.nix") { inherit lib system; };

  # a stand-in for the paasd package (no Rust toolchain in the fake package set)
  paasPackage = derivation {
    name = "paasd-standin";
    inherit system;
    builder = "/bin/sh";
    PATH = "/usr/local/bin:/usr/bin:/bin";
    args = [
      "-c"
      "mkdir -p $out/bin; : > $out/bin/paasd; : > $out/bin/paasctl"
    ];
  } // {
    meta.mainProgram = "paasd";
  };

  paasModule = repo + "/modules/paas";

  # Nix options of a container-less NixOS configuration the assembled tree can evaluate
  baseModule =
    { lib, ... }:
    {
      system.stateVersion = "24.11";
      boot.isContainer = true;
      documentation.nixos.enable = false; # the assembled tree has no manual sources
    };

  evalNixos =
    modules:
    import (tree + "/nixos/lib/eval-config.nix") {
      inherit system lib;
      modules = [ baseModule ] ++ modules;
    };

  # the same machinery pkgs.testers.runNixOSTest uses, with the fake package set as hostPkgs
  evalTest =
    module:
    (import (tree + "/nixos/lib") { inherit lib; }).evalTest {
      imports = [ module ];
      hostPkgs = stubPkgs;
    };

  vmTestArgs = {
    inherit paasModule paasPackage;
  };

  # Gaps of the fake package set, filled for the evaluation only: nginx's module reads
  # `package.modules` (nextcloud enables nginx).
  stubGaps =
    { pkgs, lib, ... }:
    {
      # the fake nextcloud's version (1.0.0) would raise upgrade warnings
      services.nextcloud.package = lib.mkForce (pkgs.nextcloud29 or pkgs.nextcloud // { version = "29.0.4"; });
      services.nginx.package = lib.mkForce (
        let
          nginx = pkgs.nginxStable // {
            modules = [ ];
            override = _: nginx;
          };
        in
        nginx
      );
    };

  vmTest =
    file:
    evalTest {
      imports = [ file ];
      _module.args = vmTestArgs;
      defaults = stubGaps;
    };

  # the flake's outputs, with a nixpkgs input made of the assembled tree
  flake =
    let
      fakeNixpkgs = {
        # as nixpkgs' flake: lib plus nixosSystem
        lib = lib // {
          nixosSystem = args: import (tree + "/nixos/lib/eval-config.nix") ({ inherit lib; } // args);
        };
        outPath = toString tree; # a string: interpolating it does not copy the tree to the store
        legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (
          s:
          let
            p = import (tree + "/stub-pkgs.nix") {
              inherit lib;
              system = s;
            };
            # development tools of the dev shell the fake package set does not know
            devTools = lib.genAttrs [
              "cargo"
              "rustc"
              "clippy"
              "rustfmt"
              "rust-analyzer"
              "nixfmt-rfc-style"
            ] (n: p.${n} or (p.stdenv.mkDerivation { name = n; }));
          in
          p
          // devTools
          // {
            testers = p.testers // {
              runNixOSTest =
                module:
                (evalTest {
                  imports = [ module ];
                  defaults = stubGaps;
                }).config.test;
            };
            mkShell =
              attrs:
              p.stdenv.mkDerivation (
                {
                  name = "nix-shell";
                  nativeBuildInputs = attrs.packages or [ ];
                }
                // builtins.removeAttrs attrs [ "packages" ]
              );
            # evaluate the real package expression with a recording rustPlatform
            callPackage =
              fn: args:
              if fn == repo + "/nix/package.nix" then
                import fn (
                  {
                    inherit lib;
                    rustPlatform.buildRustPackage = attrs: paasPackage // { passthru.buildArgs = attrs; };
                  }
                  // args
                )
              else
                p.callPackage fn args;
          }
        );
      };
      outputs = (import (repo + "/flake.nix")).outputs {
        self = outputs // {
          outPath = repo;
        };
        nixpkgs = fakeNixpkgs;
      };
    in
    outputs;

  # the real package expression, with a rustPlatform that returns its arguments
  packageArgs = import (repo + "/nix/package.nix") {
    inherit lib;
    rustPlatform.buildRustPackage = attrs: attrs;
  };
in
{
  inherit
    lib
    evalNixos
    evalTest
    vmTest
    flake
    packageArgs
    paasModule
    paasPackage
    ;

  example = evalNixos [
    paasModule
    (repo + "/nix/eval/example.nix")
    { services.paas.package = paasPackage; }
  ];

  exampleFull = evalNixos [
    paasModule
    (repo + "/nix/eval/example-full.nix")
    { services.paas.package = paasPackage; }
  ];

  assertions = import (repo + "/nix/tests/eval-assertions.nix") {
    inherit lib paasModule;
    runCommand = stubPkgs.runCommand;
    nixosEval =
      modules:
      evalNixos (
        modules
        ++ [
          { services.paas.package = paasPackage; }
        ]
      );
  };

  optionsDoc = import ./options-doc.nix {
    inherit lib;
    options = (evalNixos [ paasModule ]).options.services.paas;
  };
}
