//! Faults and control endpoints shared by the service doubles (exercised on the Vaultwarden and
//! GitLab doubles): connection resets, delays, truncated bodies, 503 bursts, and the
//! `/__double/` endpoints.

use std::time::{Duration, Instant};

use paas_doubles::gitlab::{GitlabConfig, GitlabDouble};
use paas_doubles::vaultwarden::{VaultwardenConfig, VaultwardenDouble};
use serde_json::{json, Value};

#[tokio::test]
async fn reset_delay_truncate_and_bursts() {
    let d = GitlabDouble::start(GitlabConfig::new("t")).await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/api/v4/users", d.url());
    let get = || http.get(&url).header("PRIVATE-TOKEN", "t").send();

    d.faults().reset_next(1);
    assert!(get().await.is_err(), "the connection is reset");
    assert_eq!(get().await.unwrap().status(), 200);

    d.faults().set_delay(Duration::from_millis(300));
    let t = Instant::now();
    assert_eq!(get().await.unwrap().status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    d.faults().set_delay(Duration::ZERO);

    d.faults().truncate_next(1);
    let body = get().await.unwrap().bytes().await;
    // Either the body is cut (invalid JSON) or the transfer fails: both are what a client sees.
    if let Ok(b) = body {
        assert!(serde_json::from_slice::<Value>(&b).is_err());
    }

    d.faults().fail_next(3, 502);
    for _ in 0..3 {
        assert_eq!(get().await.unwrap().status(), 502);
    }
    assert_eq!(get().await.unwrap().status(), 200);
    let st = d.stats();
    assert_eq!(st.faults_injected.get("http_reset"), Some(&1));
    assert_eq!(st.faults_injected.get("http_502"), Some(&3));
    assert_eq!(st.faults_injected.get("http_truncate"), Some(&1));
    d.faults().set_unavailable(Some(503));
    assert_eq!(get().await.unwrap().status(), 503);
    d.faults().clear();
    assert_eq!(get().await.unwrap().status(), 200);
    d.assert_no_violations();
}

#[tokio::test]
async fn control_endpoints() {
    let d = VaultwardenDouble::start(VaultwardenConfig::new("tok"))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let base = d.url();
    let r = http
        .post(format!("{base}/__double/seed"))
        .json(&json!({"users": [{"email": "Carol@Example.com", "name": "Carol", "hasMasterPassword": true}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(d.user_by_email("carol@example.com").is_some());
    let state: Value = http
        .get(format!("{base}/__double/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["users"][0]["email"], "carol@example.com");
    let plan: Value = http
        .post(format!("{base}/__double/faults"))
        .json(&json!({"healthStatus": 503}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plan["healthStatus"], 503);
    assert_eq!(
        http.get(format!("{base}/alive"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    let r = http
        .post(format!("{base}/__double/faults"))
        .json(&json!({"noSuchFault": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    http.post(format!("{base}/__double/faults/clear"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        http.get(format!("{base}/alive"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A violation, seen and cleared over HTTP.
    let _ = http
        .get(format!("{base}/admin/nothing"))
        .send()
        .await
        .unwrap();
    let v: Value = http
        .get(format!("{base}/__double/violations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["side"], "request");
    http.post(format!("{base}/__double/violations/clear"))
        .send()
        .await
        .unwrap();
    d.assert_no_violations();
    let stats: Value = http
        .get(format!("{base}/__double/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"]["GET /alive"], 2);
    assert_eq!(stats["faultsInjected"]["health_503"], 1);
}
