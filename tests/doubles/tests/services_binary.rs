//! `paas-double <service>`: each service double runs as a process with a secret file, writes its
//! port file, answers its health endpoint and an authenticated call, and stops on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Case {
    service: &'static str,
    secret_flag: &'static str,
    health: &'static str,
    /// An authenticated GET and the header carrying the secret.
    call: &'static str,
    header: &'static str,
    header_value: fn(&str) -> String,
}

#[tokio::test]
async fn every_service_double_runs_as_a_process() {
    let cases = [
        Case {
            service: "nextcloud",
            secret_flag: "--admin-password-file",
            health: "/status.php",
            call: "/ocs/v2.php/cloud/users?format=json",
            header: "Authorization",
            header_value: |s| {
                use base64::Engine as _;
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("admin:{s}"))
                )
            },
        },
        Case {
            service: "gitlab",
            secret_flag: "--token-file",
            health: "/-/readiness",
            call: "/api/v4/users",
            header: "PRIVATE-TOKEN",
            header_value: |s| s.to_owned(),
        },
        Case {
            service: "jellyfin",
            secret_flag: "--api-key-file",
            health: "/health",
            call: "/Users",
            header: "Authorization",
            header_value: |s| format!("MediaBrowser Token=\"{s}\""),
        },
        Case {
            service: "vaultwarden",
            secret_flag: "--admin-token-file",
            health: "/alive",
            call: "/alive",
            header: "X-Unused",
            header_value: |s| s.to_owned(),
        },
        Case {
            service: "mailcow",
            secret_flag: "--api-key-file",
            health: "/api/v1/get/status/version",
            call: "/api/v1/get/mailbox/all",
            header: "X-API-Key",
            header_value: |s| s.to_owned(),
        },
    ];
    let dir = std::env::temp_dir().join(format!("paas-double-services-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let http = reqwest::Client::new();
    for case in &cases {
        let secret = format!("{}-secret", case.service);
        let secret_file = dir.join(format!("{}.secret", case.service));
        std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
        let ports = dir.join(format!("{}.port", case.service));
        let _ = std::fs::remove_file(&ports);
        let child = Command::new(env!("CARGO_BIN_EXE_paas-double"))
            .args([case.service, "--listen", "127.0.0.1:0", "--port-file"])
            .arg(&ports)
            .arg(case.secret_flag)
            .arg(&secret_file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let info: Value = loop {
            if let Ok(text) = std::fs::read_to_string(&ports) {
                break serde_json::from_str(&text).unwrap();
            }
            assert!(Instant::now() < deadline, "{}: no port file", case.service);
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let url = info["url"].as_str().unwrap().to_owned();
        assert_ne!(info["port"], 0);
        let mut health = http.get(format!("{url}{}", case.health));
        if case.service == "mailcow" {
            health = health.header("X-API-Key", &secret);
        }
        assert_eq!(
            health.send().await.unwrap().status(),
            200,
            "{}",
            case.service
        );
        let r = http
            .get(format!("{url}{}", case.call))
            .header(case.header, (case.header_value)(&secret))
            .header("OCS-APIRequest", "true")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", case.service);
        // A request that breaks the contract, to see it reported at exit.
        let _ = http
            .get(format!("{url}/no/such/route"))
            .send()
            .await
            .unwrap();
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        assert!(out.status.success(), "{}: {:?}", case.service, out.status);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("contract violation(s) were recorded")
                && stderr.contains("/no/such/route"),
            "{}: {stderr}",
            case.service
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
