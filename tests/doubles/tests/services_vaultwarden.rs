//! The Vaultwarden double: admin login, cookie, invite → get → disable → enable → delete, the
//! Content-Type rule, session expiry, and violations for wrong requests.

use paas_doubles::vaultwarden::{VaultwardenConfig, VaultwardenDouble};
use serde_json::{json, Value};

async fn start() -> VaultwardenDouble {
    VaultwardenDouble::start(VaultwardenConfig::new("vw-admin-token"))
        .await
        .unwrap()
}

/// Logs in and returns the `VW_ADMIN=…` cookie pair.
async fn login(http: &reqwest::Client, url: &str, token: &str) -> (u16, Option<String>) {
    let r = http
        .post(format!("{url}/admin"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").to_owned());
    (r.status().as_u16(), cookie)
}

#[tokio::test]
async fn invite_get_disable_enable_delete_conforms() {
    let d = start().await;
    let http = reqwest::Client::new();
    let url = d.url();
    let (s, cookie) = login(&http, &url, "vw-admin-token").await;
    assert_eq!(s, 200);
    let cookie = cookie.unwrap();
    assert!(cookie.starts_with("VW_ADMIN="));
    let post = |path: &str| {
        http.post(format!("{url}{path}"))
            .header("Cookie", &cookie)
            .header("Content-Type", "application/json")
    };
    let get = |path: &str| http.get(format!("{url}{path}")).header("Cookie", &cookie);

    let r = post("/admin/invite")
        .body(json!({"email": "Alice@Example.com"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["_status"].clone(), v["email"].clone()),
        (json!(1), json!("alice@example.com"))
    );
    let uuid = v["id"].as_str().unwrap().to_owned();
    // Again → 409.
    let r = post("/admin/invite")
        .body(json!({"email": "alice@example.com"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["message"], "User already exists");

    let v: Value = get("/admin/users/by-mail/alice@example.com")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["id"].as_str(), v["userEnabled"].clone()),
        (Some(uuid.as_str()), json!(true))
    );
    assert!(d.accept_invite("alice@example.com", "Alice"));
    let v: Value = get(&format!("/admin/users/{uuid}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["_status"], 0);
    assert_eq!(v["name"], "Alice");

    let r = post(&format!("/admin/users/{uuid}/disable"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = get("/admin/users")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v[0]["userEnabled"], false);
    assert!(!d.user_by_email("alice@example.com").unwrap().enabled);
    let r = post(&format!("/admin/users/{uuid}/enable"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(d.user_by_email("alice@example.com").unwrap().enabled);
    let r = post(&format!("/admin/users/{uuid}/invite/resend"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "already accepted");
    let r = post(&format!("/admin/users/{uuid}/delete"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = get(&format!("/admin/users/{uuid}")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["message"], "User doesn't exist");
    let r = get("/admin/users/by-mail/alice@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    d.assert_no_violations();
    let st = d.stats();
    assert_eq!(st.writes_of("invite"), 1);
    assert_eq!(
        st.writes_of("disable") + st.writes_of("enable") + st.writes_of("delete"),
        3
    );
}

#[tokio::test]
async fn cookie_is_required_and_expires() {
    let d = start().await;
    let http = reqwest::Client::new();
    let url = d.url();
    let (s, cookie) = login(&http, &url, "wrong").await;
    assert_eq!((s, cookie), (401, None));
    let r = http.get(format!("{url}/admin/users")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["message"], "Authorization failed.");
    let (_, cookie) = login(&http, &url, "vw-admin-token").await;
    let cookie = cookie.unwrap();
    let list = || {
        http.get(format!("{url}/admin/users"))
            .header("Cookie", &cookie)
            .send()
    };
    assert_eq!(list().await.unwrap().status(), 200);
    d.expire_sessions();
    assert_eq!(list().await.unwrap().status(), 401);
    assert_eq!(d.stats().unauthorized, 3);
    d.assert_no_violations();
    // Health and its failure switch.
    assert_eq!(
        http.get(format!("{url}/alive"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    d.faults().set_health(Some(503));
    assert_eq!(
        http.get(format!("{url}/alive"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
}

#[tokio::test]
async fn wrong_requests_are_violations() {
    let d = start().await;
    let http = reqwest::Client::new();
    let url = d.url();
    let (_, cookie) = login(&http, &url, "vw-admin-token").await;
    let cookie = cookie.unwrap();
    // A bodiless POST without Content-Type: 404 like Rocket, and recorded.
    let uuid = d
        .seed_user(paas_doubles::vaultwarden::VaultwardenUser::registered(
            "bob@example.com",
            "Bob",
        ))
        .unwrap();
    let r = http
        .post(format!("{url}/admin/users/{uuid}/disable"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(d.user_by_email("bob@example.com").unwrap().enabled);
    let v = d.take_violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].message.contains("Content-Type"));
    // Invite with a wrong body type, and an undocumented route.
    let _ = http
        .post(format!("{url}/admin/invite"))
        .header("Cookie", &cookie)
        .header("Content-Type", "application/json")
        .body(r#"{"email": ["bob"]}"#)
        .send()
        .await
        .unwrap();
    let _ = http
        .get(format!("{url}/admin/users/{uuid}/devices"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    let v = d.take_violations();
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v[0].message.contains("request body"));
    assert!(v[1].message.contains("not documented"));
    // Logging in with JSON instead of the form.
    let _ = http
        .post(format!("{url}/admin"))
        .json(&json!({"token": "vw-admin-token"}))
        .send()
        .await
        .unwrap();
    let v = d.take_violations();
    assert!(
        v[0].message.contains("Content-Type application/json"),
        "{v:?}"
    );
}
