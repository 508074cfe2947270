//! The Nextcloud double: a client's create → get → update → disable → enable → delete cycle
//! conforms to the OpenAPI documents, the OCS quirks are reproduced, and a wrong request is
//! recorded as a violation.

use paas_doubles::nextcloud::{NextcloudConfig, NextcloudDouble, NextcloudUser};
use paas_doubles::service::Side;
use serde_json::{json, Value};

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(d: &NextcloudDouble) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("{}/ocs/v2.php", d.url()),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .basic_auth("admin", Some("nc-secret"))
            .header("OCS-APIRequest", "true")
            .header("Accept", "application/json")
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> (u16, Value) {
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }
}

async fn start() -> NextcloudDouble {
    NextcloudDouble::start(NextcloudConfig::new("nc-secret"))
        .await
        .unwrap()
}

#[tokio::test]
async fn full_cycle_conforms_and_changes_state() {
    let d = start().await;
    let c = Client::new(&d);
    use reqwest::Method as M;

    let (s, v) = c
        .send(
            c.req(M::POST, "/cloud/groups")
                .json(&json!({"groupid": "family"})),
        )
        .await;
    assert_eq!(
        (s, v["ocs"]["meta"]["statuscode"].clone()),
        (200, json!(200))
    );
    let (s, v) = c
        .send(c.req(M::POST, "/cloud/users").json(&json!({
            "userid": "alice", "password": "a-long-password-1", "displayName": "Alice A",
            "email": "alice@example.com", "groups": ["family"], "quota": "10 GB"
        })))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ocs"]["data"]["id"], "alice");
    let (s, v) = c.send(c.req(M::GET, "/cloud/users/alice")).await;
    assert_eq!(s, 200);
    let data = &v["ocs"]["data"];
    assert_eq!(data["displayname"], "Alice A");
    assert_eq!(data["email"], "alice@example.com");
    assert_eq!(data["groups"], json!(["family"]));
    assert_eq!(data["quota"]["quota"], json!(10u64 * 1024 * 1024 * 1024));
    assert_eq!(data["enabled"], true);

    for (k, val) in [
        ("displayname", "Alice B"),
        ("email", "a@example.org"),
        ("quota", "5 GB"),
    ] {
        let (s, v) = c
            .send(
                c.req(M::PUT, "/cloud/users/alice")
                    .json(&json!({"key": k, "value": val})),
            )
            .await;
        assert_eq!(s, 200, "{k}: {v}");
    }
    let (s, _) = c
        .send(
            c.req(M::POST, "/cloud/users/alice/groups")
                .json(&json!({"groupid": "admin"})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = c.send(c.req(M::GET, "/cloud/users/alice/groups")).await;
    assert_eq!(s, 200);
    assert_eq!(v["ocs"]["data"]["groups"], json!(["admin", "family"]));
    let (s, _) = c
        .send(c.req(M::DELETE, "/cloud/users/alice/groups?groupid=family"))
        .await;
    assert_eq!(s, 200);
    let (s, _) = c.send(c.req(M::PUT, "/cloud/users/alice/disable")).await;
    assert_eq!(s, 200);
    assert!(!d.user("alice").unwrap().enabled);
    let (s, v) = c.send(c.req(M::GET, "/cloud/users?search=ali")).await;
    assert_eq!(
        (s, v["ocs"]["data"]["users"].clone()),
        (200, json!(["alice"]))
    );
    let (s, v) = c.send(c.req(M::GET, "/cloud/users/details")).await;
    assert_eq!(s, 200);
    assert_eq!(v["ocs"]["data"]["users"]["alice"]["enabled"], false);
    let (s, _) = c.send(c.req(M::PUT, "/cloud/users/alice/enable")).await;
    assert_eq!(s, 200);
    let u = d.user("alice").unwrap();
    assert!(u.enabled);
    assert_eq!(u.display_name, "Alice B");
    assert_eq!(u.quota, "5 GB");
    assert_eq!(u.groups.iter().collect::<Vec<_>>(), vec!["admin"]);
    assert!(d.check_password("alice", "a-long-password-1"));
    let (s, _) = c.send(c.req(M::DELETE, "/cloud/users/alice")).await;
    assert_eq!(s, 200);
    assert!(d.user("alice").is_none());

    d.assert_no_violations();
    let st = d.stats();
    assert_eq!(st.writes_of("createUser"), 1);
    assert_eq!(st.writes_of("deleteUser"), 1);
    assert_eq!(st.requests_to("PUT /ocs/v2.php/cloud/users/{userId}"), 3);
    assert_eq!(
        st.requests_to("PUT /ocs/v2.php/cloud/users/{userId}/disable"),
        1
    );
    d.stop().await;
}

#[tokio::test]
async fn ocs_errors_map_to_v2_http_statuses() {
    let d = start().await;
    d.seed_user(NextcloudUser::new("bob", "pw-bob-123456"))
        .unwrap();
    let c = Client::new(&d);
    use reqwest::Method as M;
    // 102 user exists → 400.
    let (s, v) = c
        .send(
            c.req(M::POST, "/cloud/users")
                .json(&json!({"userid": "bob", "password": "x-long-password"})),
        )
        .await;
    assert_eq!(
        (s, v["ocs"]["meta"]["statuscode"].clone()),
        (400, json!(102))
    );
    assert_eq!(v["ocs"]["meta"]["status"], "failure");
    // 104 group does not exist.
    let (s, v) = c
        .send(
            c.req(M::POST, "/cloud/users")
                .json(&json!({"userid": "carol", "password": "pw-pw-pw-pw", "groups": ["nope"]})),
        )
        .await;
    assert_eq!(
        (s, v["ocs"]["meta"]["statuscode"].clone()),
        (400, json!(104))
    );
    // 108 neither password nor email.
    let (s, v) = c
        .send(
            c.req(M::POST, "/cloud/users")
                .json(&json!({"userid": "carol"})),
        )
        .await;
    assert_eq!(
        (s, v["ocs"]["meta"]["statuscode"].clone()),
        (400, json!(108))
    );
    // Unknown user: GET → 404, DELETE → 101/400, disable → 101/400.
    let (s, _) = c.send(c.req(M::GET, "/cloud/users/ghost")).await;
    assert_eq!(s, 404);
    let (s, v) = c.send(c.req(M::DELETE, "/cloud/users/ghost")).await;
    assert_eq!(
        (s, v["ocs"]["meta"]["statuscode"].clone()),
        (400, json!(101))
    );
    let (s, _) = c.send(c.req(M::PUT, "/cloud/users/ghost/disable")).await;
    assert_eq!(s, 400);
    // Invalid quota → 102; unknown key → 103.
    let (s, v) = c
        .send(
            c.req(M::PUT, "/cloud/users/bob")
                .json(&json!({"key": "quota", "value": "lots"})),
        )
        .await;
    assert_eq!(
        (s, v["ocs"]["meta"]["statuscode"].clone()),
        (400, json!(102))
    );
    let (s, v) = c
        .send(
            c.req(M::PUT, "/cloud/users/bob")
                .json(&json!({"key": "colour", "value": "red"})),
        )
        .await;
    assert_eq!(
        (s, v["ocs"]["meta"]["statuscode"].clone()),
        (400, json!(103))
    );
    // Existing group → 102.
    let (s, _) = c
        .send(
            c.req(M::POST, "/cloud/groups")
                .json(&json!({"groupid": "admin"})),
        )
        .await;
    assert_eq!(s, 400);
    // Wrong password → 401 with statuscode 997.
    let r = c
        .http
        .get(format!("{}/cloud/users", c.base))
        .basic_auth("admin", Some("wrong"))
        .header("OCS-APIRequest", "true")
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    d.assert_no_violations();
    assert_eq!(d.stats().unauthorized, 1);
}

#[tokio::test]
async fn wrong_requests_are_recorded_as_violations() {
    let d = start().await;
    let c = Client::new(&d);
    // Missing OCS-APIRequest: a violation, and the real server's CSRF check answers 401.
    let r = c
        .http
        .get(format!("{}/cloud/users", c.base))
        .basic_auth("admin", Some("nc-secret"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v = d.take_violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].message.contains("OCS-APIRequest"), "{v:?}");
    assert_eq!(v[0].side, Side::Request);
    // A body of the wrong type.
    let (_, _) = c
        .send(
            c.req(reqwest::Method::POST, "/cloud/users")
                .json(&json!({"userid": 42, "password": "pw"})),
        )
        .await;
    let v = d.take_violations();
    assert!(
        v.iter().any(|v| v.message.contains("request body")),
        "{v:?}"
    );
    // An undocumented path and an undocumented query parameter.
    let _ = c.send(c.req(reqwest::Method::GET, "/cloud/userz")).await;
    let _ = c
        .send(c.req(reqwest::Method::GET, "/cloud/users?serch=x"))
        .await;
    let v = d.take_violations();
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v[0].message.contains("not documented"));
    assert!(v[1].message.contains("`serch`"));
    // Form bodies are not documented (the documents describe JSON bodies only).
    let _ = c
        .req(reqwest::Method::PUT, "/cloud/users/admin")
        .form(&[("key", "email"), ("value", "a@b.c")])
        .send()
        .await
        .unwrap();
    let v = d.take_violations();
    assert!(
        v[0].message
            .contains("Content-Type application/x-www-form-urlencoded"),
        "{v:?}"
    );
}

#[tokio::test]
async fn health_faults_and_maintenance() {
    let d = start().await;
    let http = reqwest::Client::new();
    let status = format!("{}/status.php", d.url());
    let v: Value = http
        .get(&status)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["installed"].clone(), v["maintenance"].clone()),
        (json!(true), json!(false))
    );
    d.faults().set_health(Some(503));
    assert_eq!(http.get(&status).send().await.unwrap().status(), 503);
    d.faults().set_health(None);
    d.set_maintenance(true);
    let v: Value = http
        .get(&status)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["maintenance"], true);
    let c = Client::new(&d);
    let r = c
        .req(reqwest::Method::GET, "/cloud/users")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    d.set_maintenance(false);
    d.faults().fail_next(2, 503);
    for _ in 0..2 {
        let r = c
            .req(reqwest::Method::GET, "/cloud/users")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
    }
    let (s, _) = c.send(c.req(reqwest::Method::GET, "/cloud/users")).await;
    assert_eq!(s, 200);
    assert_eq!(d.stats().faults_injected.get("http_503"), Some(&2));
    d.assert_no_violations();
}
