//! The Mailcow double: add → get → edit (deactivate, reactivate) → delete conforms to the
//! document (with its documented corrections); logical errors come back as HTTP 200 `danger`;
//! keys, read-only keys and `Sec-Fetch-Dest` behave like Mailcow; wrong requests are recorded.

use paas_doubles::mailcow::{MailcowConfig, MailcowDouble};
use serde_json::{json, Value};

async fn start() -> MailcowDouble {
    MailcowDouble::start(MailcowConfig {
        read_only_key: Some("ro-key".into()),
        ..MailcowConfig::new("rw-key")
    })
    .await
    .unwrap()
}

fn post(http: &reqwest::Client, url: String, body: Value) -> reqwest::RequestBuilder {
    http.post(url).header("X-API-Key", "rw-key").json(&body)
}

async fn get(http: &reqwest::Client, url: String) -> Value {
    http.get(url)
        .header("X-API-Key", "rw-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn full_cycle_conforms() {
    let d = start().await;
    let http = reqwest::Client::new();
    let api = format!("{}/api/v1", d.url());
    let add = json!({"local_part": "alice", "domain": "example.com", "name": "Alice", "password": "pw-pw-pw-1",
                     "password2": "pw-pw-pw-1", "quota": "3072", "active": "1", "force_pw_update": "0", "authsource": "mailcow"});
    let v: Value = post(&http, format!("{api}/add/mailbox"), add.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v[0]["type"], "success", "{v}");
    assert_eq!(v[0]["msg"], json!(["mailbox_added", "alice@example.com"]));
    assert_eq!(v[0]["log"][3]["password"], "*");
    // Again: HTTP 200 with type danger.
    let r = post(&http, format!("{api}/add/mailbox"), add)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v[0]["type"].clone(), v[0]["msg"].clone()),
        (
            json!("danger"),
            json!(["object_exists", "alice@example.com"])
        )
    );
    let v: Value = post(
        &http,
        format!("{api}/add/mailbox"),
        json!({"local_part": "bob", "domain": "nowhere.org", "password": "p", "password2": "p"}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(v[0]["msg"], json!(["domain_not_found", "nowhere.org"]));
    // Get one, all, unknown.
    let v = get(&http, format!("{api}/get/mailbox/alice@example.com")).await;
    assert_eq!(
        (v["name"].clone(), v["quota"].clone()),
        (json!("Alice"), json!(3072u64 * 1024 * 1024))
    );
    let v = get(&http, format!("{api}/get/mailbox/all")).await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    let v = get(&http, format!("{api}/get/mailbox/ghost@example.com")).await;
    assert_eq!(v, json!({}));
    // Edit: name, quota, deactivate; then reactivate.
    let v: Value = post(&http, format!("{api}/edit/mailbox"), json!({"items": ["alice@example.com"], "attr": {"name": "Alice B", "quota": "1024", "active": "0"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v[0]["msg"],
        json!(["mailbox_modified", "alice@example.com"])
    );
    let m = d.mailbox("alice@example.com").unwrap();
    assert_eq!(
        (m.name.as_str(), m.quota, m.active),
        ("Alice B", 1024 * 1024 * 1024, 0)
    );
    let v: Value = post(&http, format!("{api}/edit/mailbox"), json!({"items": ["alice@example.com"], "attr": {"active": "1", "password": "new-pw-123", "password2": "new-pw-123"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v[0]["type"], "success");
    let m = d.mailbox("alice@example.com").unwrap();
    assert_eq!((m.active, m.password.as_deref()), (1, Some("new-pw-123")));
    // Delete.
    let v: Value = post(
        &http,
        format!("{api}/delete/mailbox"),
        json!(["alice@example.com"]),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(v[0]["msg"], json!(["mailbox_removed", "alice@example.com"]));
    assert!(d.mailbox("alice@example.com").is_none());
    d.assert_no_violations();
    let st = d.stats();
    assert_eq!(
        (
            st.writes_of("addMailbox"),
            st.writes_of("editMailbox"),
            st.writes_of("deleteMailbox")
        ),
        (1, 2, 1)
    );
}

#[tokio::test]
async fn keys_browser_requests_and_health() {
    let d = start().await;
    let http = reqwest::Client::new();
    let api = format!("{}/api/v1", d.url());
    let r = http
        .get(format!("{api}/get/mailbox/all"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"type": "error", "msg": "authentication failed"})
    );
    let r = http
        .post(format!("{api}/delete/mailbox"))
        .header("X-API-Key", "ro-key")
        .json(&json!(["x@example.com"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .get(format!("{api}/get/mailbox/all"))
        .header("X-API-Key", "ro-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{api}/get/mailbox/all"))
        .header("X-API-Key", "rw-key")
        .header("Sec-Fetch-Dest", "document")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v = get(&http, format!("{api}/get/status/version")).await;
    assert!(v["version"].is_string());
    d.faults().set_health(Some(503));
    let r = http
        .get(format!("{api}/get/status/version"))
        .header("X-API-Key", "rw-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    d.assert_no_violations();
}

#[tokio::test]
async fn wrong_requests_are_violations() {
    let d = start().await;
    let http = reqwest::Client::new();
    let api = format!("{}/api/v1", d.url());
    // A quota that is neither a number nor a numeric string; an active flag "yes".
    let _ = post(&http, format!("{api}/add/mailbox"), json!({"local_part": "c", "domain": "example.com", "quota": "lots", "active": "yes", "password": "p", "password2": "p"}))
        .send()
        .await
        .unwrap();
    let v = d.take_violations();
    assert_eq!(v.len(), 2, "{v:#?}");
    // Delete with an object instead of the array of addresses; an undocumented route.
    let _ = post(
        &http,
        format!("{api}/delete/mailbox"),
        json!({"items": ["c@example.com"]}),
    )
    .send()
    .await
    .unwrap();
    let _ = post(
        &http,
        format!("{api}/remove/mailbox"),
        json!(["c@example.com"]),
    )
    .send()
    .await
    .unwrap();
    let v = d.take_violations();
    assert_eq!(v.len(), 2, "{v:#?}");
    assert!(v[0].message.contains("request body"));
    assert!(v[1].message.contains("not documented"));
}
