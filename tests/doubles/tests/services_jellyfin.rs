//! The Jellyfin double: create → get → rename → password → policy (disable/enable, admin) →
//! delete conforms to the document; auth, duplicates and the last-admin rules behave like
//! Jellyfin; wrong requests are recorded.

use paas_doubles::jellyfin::{JellyfinConfig, JellyfinDouble};
use serde_json::{json, Value};

const AUTH: &str = r#"MediaBrowser Client="paasd", Device="paasd", DeviceId="paasd-1", Version="0.1", Token="jf-key""#;

async fn start() -> JellyfinDouble {
    JellyfinDouble::start(JellyfinConfig::new("jf-key"))
        .await
        .unwrap()
}

fn req(http: &reqwest::Client, m: reqwest::Method, url: String) -> reqwest::RequestBuilder {
    http.request(m, url).header("Authorization", AUTH)
}

#[tokio::test]
async fn full_cycle_conforms() {
    let d = start().await;
    let http = reqwest::Client::new();
    let u = d.url();
    use reqwest::Method as M;
    let r = req(&http, M::POST, format!("{u}/Users/New"))
        .json(&json!({"Name": "alice", "Password": "pw-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let dto: Value = r.json().await.unwrap();
    let id = dto["Id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32, "GUID without dashes");
    assert_eq!(dto["HasPassword"], true);
    // Duplicate (case-insensitive) → 400 text/plain.
    let r = req(&http, M::POST, format!("{u}/Users/New"))
        .json(&json!({"Name": "Alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.text().await.unwrap(), "Error processing request.");
    // Rename with the full DTO.
    let mut dto: Value = req(&http, M::GET, format!("{u}/Users/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    dto["Name"] = json!("alice2");
    let r = req(&http, M::POST, format!("{u}/Users?userId={id}"))
        .json(&dto)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(d.user(&id).unwrap().name, "alice2");
    // Password.
    let r = req(&http, M::POST, format!("{u}/Users/Password?userId={id}"))
        .json(&json!({"NewPw": "pw-2", "ResetPassword": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(d.check_password(&id, "pw-2"));
    // Disable, then enable with access to all folders, then make admin.
    let mut policy = dto["Policy"].clone();
    policy["IsDisabled"] = json!(true);
    let r = req(&http, M::POST, format!("{u}/Users/{id}/Policy"))
        .json(&policy)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(d.user(&id).unwrap().is_disabled());
    let list: Value = req(&http, M::GET, format!("{u}/Users?isDisabled=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    policy["IsDisabled"] = json!(false);
    policy["IsAdministrator"] = json!(true);
    policy["EnableAllFolders"] = json!(true);
    let r = req(&http, M::POST, format!("{u}/Users/{id}/Policy"))
        .json(&policy)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let user = d.user(&id).unwrap();
    assert!(user.is_admin() && !user.is_disabled());
    // Disabling an administrator is refused.
    policy["IsDisabled"] = json!(true);
    let r = req(&http, M::POST, format!("{u}/Users/{id}/Policy"))
        .json(&policy)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = req(&http, M::DELETE, format!("{u}/Users/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = req(&http, M::GET, format!("{u}/Users/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    d.assert_no_violations();
    assert_eq!(d.stats().writes_of("updatePolicy"), 2);
}

#[tokio::test]
async fn auth_legacy_headers_and_last_admin() {
    let d = start().await;
    let http = reqwest::Client::new();
    let u = d.url();
    let r = http
        .get(format!("{u}/Users"))
        .header("X-Emby-Token", "jf-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "legacy header refused by default");
    let r = http
        .get(format!("{u}/Users?ApiKey=jf-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let users: Value = r.json().await.unwrap();
    let root = users[0]["Id"].as_str().unwrap().to_owned();
    let mut policy = users[0]["Policy"].clone();
    policy["IsAdministrator"] = json!(false);
    let r = req(
        &http,
        reqwest::Method::POST,
        format!("{u}/Users/{root}/Policy"),
    )
    .json(&policy)
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    let r = req(&http, reqwest::Method::DELETE, format!("{u}/Users/{root}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        http.get(format!("{u}/health"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Healthy"
    );
    d.faults().set_unavailable(Some(503));
    assert_eq!(
        http.get(format!("{u}/health"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    d.faults().set_unavailable(None);
    d.assert_no_violations();
    let legacy = JellyfinDouble::start(JellyfinConfig {
        legacy_authorization: true,
        ..JellyfinConfig::new("jf-key")
    })
    .await
    .unwrap();
    let r = http
        .get(format!("{}/Users", legacy.url()))
        .header("X-Emby-Token", "jf-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn unknown_policy_fields_and_wrong_bodies_are_violations() {
    let d = start().await;
    let http = reqwest::Client::new();
    let u = d.url();
    let id = d.seed_user(paas_doubles::jellyfin::JellyfinUser::new("bob"));
    // A policy with an unknown field and without the required provider ids.
    let _ = req(
        &http,
        reqwest::Method::POST,
        format!("{u}/Users/{id}/Policy"),
    )
    .json(&json!({"IsAdministrator": false, "IsDisabled": true, "Disabled": true}))
    .send()
    .await
    .unwrap();
    let v = d.take_violations();
    let all: Vec<String> = v.iter().map(ToString::to_string).collect();
    assert!(all.iter().any(|m| m.contains("Disabled")), "{all:#?}");
    assert!(
        all.iter().any(|m| m.contains("AuthenticationProviderId")),
        "{all:#?}"
    );
    // Create with a number as the name; a legacy route that is not in the document.
    let _ = req(&http, reqwest::Method::POST, format!("{u}/Users/New"))
        .json(&json!({"Name": 5}))
        .send()
        .await
        .unwrap();
    let _ = req(
        &http,
        reqwest::Method::POST,
        format!("{u}/Users/{id}/Password"),
    )
    .json(&json!({"NewPw": "x"}))
    .send()
    .await
    .unwrap();
    let v = d.take_violations();
    assert_eq!(v.len(), 2, "{v:#?}");
    assert!(v[0].message.contains("request body"));
    assert!(v[1].message.contains("not documented"));
}
