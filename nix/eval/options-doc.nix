# Renders the option reference of services.paas as Markdown (the generated part of
# docs/options.md), from the options as the NixOS module system sees them.
{ lib, options }:

let
  docs = builtins.filter (o: o.visible && !o.internal) (lib.optionAttrSetToDocList options);

  render =
    v:
    if v ? _type && v._type == "literalExpression" then
      v.text
    else if v ? _type && v._type == "literalMD" then
      v.text
    else
      lib.generators.toPretty { } v;

  field =
    label: v:
    let
      text = lib.removeSuffix "\n" (render v);
    in
    if lib.hasInfix "\n" text then
      "- ${label}:\n\n  ```nix\n${lib.concatMapStrings (l: "  ${l}\n") (lib.splitString "\n" text)}  ```\n"
    else
      "- ${label}: `${text}`\n";

  renderOption =
    o:
    "### `${o.name}`\n\n"
    + "${lib.removeSuffix "\n" o.description}\n\n"
    + "- Type: ${o.type}\n"
    + lib.optionalString (o ? default) (field "Default" o.default)
    + lib.optionalString (o ? example) (field "Example" o.example);
in
lib.concatMapStringsSep "\n" renderOption docs
