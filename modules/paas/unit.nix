# What runs paasd: the systemd service (Type=notify-reload, reloaded when only the spec changes),
# its LoadCredential= lines (one per secret, see common.nix), its ordering after LLDAP and the
# services of services.nix enabled on the same host, its sandboxing; the D-Bus policy of
# org.paasd.Paasd1; the paasd system user and group.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.paas;
  common = import ./common.nix { inherit lib; };
  inherit (common) busName;
  lldapLocal = common.lldapLocal config;

  # `toString` of a path value gives its name without copying it to the store
  loadCredentials = map (s: "${s.name}:${toString s.path}") (common.secrets cfg);

  # units of the same host paasd talks to: LLDAP, and each configured service whose NixOS service
  # (services.<name>.enable) runs here
  localUnitsAfter =
    lib.optional lldapLocal "lldap.service"
    ++ lib.concatMap (
      svc:
      let
        s = common.services.${svc};
      in
      lib.optionals (s.hostUnits != [ ] && (config.services.${svc}.enable or false)) s.hostUnits
    ) (common.configuredServices cfg);

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
in
{
  config = lib.mkIf cfg.enable {
    services.dbus.packages = [ dbusPolicy ];

    users.users.paasd = {
      isSystemUser = true;
      group = "paasd";
      description = "paasd account provisioning daemon";
    };
    users.groups.paasd = { };

    systemd.services.${common.unitName} = {
      description = "paasd: declarative accounts in LLDAP and self-hosted services";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ] ++ lib.optional lldapLocal "lldap.service";
      after = [ "network-online.target" ] ++ localUnitsAfter;
      # A changed spec only reloads paasd (SIGHUP, Type=notify-reload); a changed set of credentials
      # (LoadCredential= is part of the unit) restarts it, since systemd loads credentials at start.
      reloadTriggers = [ config.environment.etc.${common.specEtc}.source ];
      serviceConfig = {
        Type = "notify-reload";
        ExecStart = lib.escapeShellArgs [
          (lib.getExe' cfg.package "paasd")
          "--spec"
          common.specPath
          "--state-dir"
          common.stateDir
          "--resync-interval"
          (toString (common.durationToSeconds cfg.resyncInterval))
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

        # sandboxing: the settings of dist/paasd.service (nix/eval/check.sh compares them)
        UMask = "0077";
        NoNewPrivileges = true;
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        DevicePolicy = "closed";
        PrivateIPC = true;
        RemoveIPC = true;
        KeyringMode = "private";
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        # other processes are invisible in /proc, and /proc holds only process directories
        ProtectProc = "invisible";
        ProcSubset = "pid";
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
        # a filtered system call fails with EPERM instead of killing paasd
        SystemCallErrorNumber = "EPERM";
      };
    };
  };
}
