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

/// A login from `client`: status, `Set-Cookie`, `Retry-After`, body.
async fn login_raw(
    client: &reqwest::Client,
    url: &str,
    token: &str,
) -> (u16, Option<String>, Option<String>, String) {
    let r = client
        .post(format!("{url}/admin"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let header = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (cookie, retry) = (header("set-cookie"), header("retry-after"));
    (r.status().as_u16(), cookie, retry, r.text().await.unwrap())
}

#[tokio::test]
async fn admin_logins_are_rate_limited_per_ip_like_vaultwarden() {
    let d = start().await;
    let http = reqwest::Client::new();
    let url = d.url();
    // Three at once (a wrong token counts too), then 429 with the login page and no Retry-After.
    let (s, cookie, _, _) = login_raw(&http, &url, "vw-admin-token").await;
    assert_eq!(s, 200);
    let cookie = cookie.unwrap();
    assert!(
        cookie.starts_with("VW_ADMIN=")
            && cookie.contains("Path=/admin")
            && cookie.contains("Max-Age=1200"),
        "{cookie}"
    );
    assert_eq!(login_raw(&http, &url, "wrong").await.0, 401);
    assert_eq!(login_raw(&http, &url, "vw-admin-token").await.0, 200);
    let (s, cookie, retry, body) = login_raw(&http, &url, "vw-admin-token").await;
    assert_eq!((s, cookie, retry), (429, None, None));
    assert!(body.starts_with("<!DOCTYPE html>"), "{body}");
    assert!(
        body.contains("Too many requests, try again later."),
        "{body}"
    );
    // A refused try uses nothing up: after 299 s still limited, after 300 s one more login.
    d.advance_clock(std::time::Duration::from_secs(299));
    assert_eq!(login_raw(&http, &url, "vw-admin-token").await.0, 429);
    d.advance_clock(std::time::Duration::from_secs(2));
    assert_eq!(login_raw(&http, &url, "vw-admin-token").await.0, 200);
    assert_eq!(login_raw(&http, &url, "vw-admin-token").await.0, 429);
    assert_eq!(
        d.logins(),
        paas_doubles::vaultwarden::AdminLogins {
            ok: 3,
            refused: 1,
            rate_limited: 3
        }
    );
    // Another client IP has its own limit.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    assert_eq!(login_raw(&other, &url, "vw-admin-token").await.0, 200);
    d.assert_no_violations();
}

#[tokio::test]
async fn sessions_expire_on_the_doubles_clock_and_the_limits_are_configurable() {
    let d = VaultwardenDouble::start(VaultwardenConfig {
        admin_ratelimit_seconds: 10,
        admin_ratelimit_max_burst: 1,
        ..VaultwardenConfig::new("vw-admin-token")
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let url = d.url();
    let (s, cookie, _, _) = login_raw(&http, &url, "vw-admin-token").await;
    assert_eq!(s, 200);
    let cookie = cookie.unwrap().split(';').next().unwrap().to_owned();
    assert_eq!(login_raw(&http, &url, "vw-admin-token").await.0, 429);
    let list = || {
        http.get(format!("{url}/admin/users"))
            .header("Cookie", &cookie)
            .header("Accept", "application/json")
            .send()
    };
    assert_eq!(list().await.unwrap().status(), 200);
    // 20 minutes later on the double's clock (moved by the control endpoint): expired, and
    // the cookie is cleared.
    let before = d.now();
    let r = http
        .post(format!("{url}/__double/clock"))
        .json(&json!({"advanceSecs": 1199}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert!(v["now"].as_i64().unwrap() >= before + 1199, "{v}");
    assert_eq!(
        list().await.unwrap().status(),
        200,
        "still within 20 minutes"
    );
    d.advance_clock(std::time::Duration::from_secs(2));
    let r = list().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("VW_ADMIN=;")));
    // The limit refilled meanwhile (10 s, burst 1).
    assert_eq!(login_raw(&http, &url, "vw-admin-token").await.0, 200);
    // A session that ends in the middle of a run.
    let (_, cookie, _, _) = login_raw(&http, &url, "vw-admin-token").await;
    assert!(cookie.is_none(), "burst 1: limited again");
    d.advance_clock(std::time::Duration::from_secs(10));
    let (_, cookie, _, _) = login_raw(&http, &url, "vw-admin-token").await;
    let cookie = cookie.unwrap().split(';').next().unwrap().to_owned();
    d.expire_sessions_after(1);
    let get = || {
        http.get(format!("{url}/admin/users"))
            .header("Cookie", &cookie)
            .send()
    };
    assert_eq!(get().await.unwrap().status(), 200);
    assert_eq!(get().await.unwrap().status(), 401);
    d.assert_no_violations();
    // Zero limits are refused, as Vaultwarden refuses to start with them.
    assert!(VaultwardenDouble::start(VaultwardenConfig {
        admin_ratelimit_max_burst: 0,
        ..VaultwardenConfig::new("t")
    })
    .await
    .is_err());
}
