# Compatibility shim: the module lives in ./paas (imported as `<checkout>/modules/paas.nix` before).
{ imports = [ ./paas ]; }
