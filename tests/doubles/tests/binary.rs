//! The `paas-double lldap` binary: port 0, the port file, serving, and SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[tokio::test]
async fn binary_writes_ports_serves_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("paas-double-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pw = dir.join("admin-password");
    std::fs::write(&pw, "bin-secret\n").unwrap();
    let ports = dir.join("ports.json");
    let _ = std::fs::remove_file(&ports);
    let mut child = Command::new(env!("CARGO_BIN_EXE_paas-double"))
        .args([
            "lldap",
            "--http",
            "127.0.0.1:0",
            "--ldap",
            "127.0.0.1:0",
            "--seed-users",
            "3",
        ])
        .arg("--admin-password-file")
        .arg(&pw)
        .arg("--port-file")
        .arg(&ports)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let info: Value = loop {
        if let Ok(text) = std::fs::read_to_string(&ports) {
            break serde_json::from_str(&text).unwrap();
        }
        assert!(Instant::now() < deadline, "no port file");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let http_url = info["httpUrl"].as_str().unwrap().to_owned();
    assert!(info["ldapUrl"]
        .as_str()
        .unwrap()
        .starts_with("ldap://127.0.0.1:"));
    assert_ne!(info["httpPort"], 0);

    let client = reqwest::Client::new();
    let r = client
        .post(format!("{http_url}/auth/simple/login"))
        .json(&json!({"username": "admin", "password": "bin-secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let v: Value = client
        .post(format!("{http_url}/api/graphql"))
        .bearer_auth(&token)
        .json(&json!({"query": "{ users { id } }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"]["users"].as_array().unwrap().len(), 4);

    let pid = child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
