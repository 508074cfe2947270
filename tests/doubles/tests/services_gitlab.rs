//! The GitLab double: create → get → update → block → unblock → delete with custom attributes,
//! filters and pagination conform to the document; conflicts and auth behave like GitLab; wrong
//! requests are recorded.

use paas_doubles::gitlab::{GitlabConfig, GitlabDouble, GitlabUser};
use serde_json::{json, Value};

async fn start() -> GitlabDouble {
    GitlabDouble::start(GitlabConfig::new("glpat-test"))
        .await
        .unwrap()
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(d: &GitlabDouble) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("{}/api/v4", d.url()),
        }
    }

    fn req(&self, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(m, format!("{}{path}", self.base))
            .header("PRIVATE-TOKEN", "glpat-test")
    }
}

#[tokio::test]
async fn full_cycle_conforms() {
    let d = start().await;
    let c = Client::new(&d);
    use reqwest::Method as M;
    let r = c
        .req(M::POST, "/users")
        .json(&json!({
            "email": "alice@example.com", "name": "Alice", "username": "alice",
            "force_random_password": true, "skip_confirmation": true,
            "extern_uid": "uid=alice,ou=people,dc=example,dc=com", "provider": "ldapmain",
            "admin": false, "external": true, "can_create_group": false, "projects_limit": 5
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let id = v["id"].as_u64().unwrap();
    assert_eq!(v["identities"][0]["provider"], "ldapmain");
    assert_eq!(
        (v["external"].clone(), v["projects_limit"].clone()),
        (json!(true), json!(5))
    );
    // Conflicts.
    let r = c
        .req(M::POST, "/users")
        .json(&json!({"email": "ALICE@example.com", "name": "A2", "username": "alice2", "password": "long-enough-pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "Email has already been taken"
    );
    // Tag as managed, then filter by the tag.
    let r = c
        .req(M::PUT, &format!("/users/{id}/custom_attributes/managed_by"))
        .json(&json!({"value": "paasd"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .req(
            M::GET,
            "/users?custom_attributes[managed_by]=paasd&with_custom_attributes=true",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-total"], "1");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v[0]["username"], "alice");
    assert_eq!(
        v[0]["custom_attributes"],
        json!([{"key": "managed_by", "value": "paasd"}])
    );
    let v: Value = c
        .req(M::GET, "/users?extern_uid=uid%3Dalice%2Cou%3Dpeople%2Cdc%3Dexample%2Cdc%3Dcom&provider=ldapmain")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    let v: Value = c
        .req(M::GET, &format!("/users/{id}/custom_attributes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!([{"key": "managed_by", "value": "paasd"}]));
    // Update.
    let r = c
        .req(M::PUT, &format!("/users/{id}"))
        .json(&json!({"name": "Alice B", "email": "alice@example.org", "skip_reconfirmation": true, "admin": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = c
        .req(M::GET, &format!("/users/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["name"].clone(), v["is_admin"].clone()),
        (json!("Alice B"), json!(true))
    );
    // Block / unblock.
    let r = c
        .req(M::POST, &format!("/users/{id}/block"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.text().await.unwrap(), "true");
    let v: Value = c
        .req(M::GET, "/users?blocked=true")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v[0]["state"], "blocked");
    let r = c
        .req(M::POST, &format!("/users/{id}/unblock"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(d.user(id).unwrap().state, "active");
    // Delete.
    let r = c
        .req(
            M::DELETE,
            &format!("/users/{id}/custom_attributes/managed_by"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c
        .req(M::DELETE, &format!("/users/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c.req(M::GET, &format!("/users/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "404 User Not Found"
    );
    d.assert_no_violations();
    let st = d.stats();
    assert_eq!(st.writes_of("createUser"), 1);
    assert_eq!(st.writes_of("blockUser"), 1);
    assert_eq!(st.writes_of("deleteUser"), 1);
}

#[tokio::test]
async fn pagination_and_auth() {
    let d = start().await;
    for i in 0..130 {
        d.seed_user(GitlabUser::new(
            &format!("u{i:03}"),
            "U",
            &format!("u{i}@example.com"),
        ));
    }
    let c = Client::new(&d);
    let r = c
        .req(reqwest::Method::GET, "/users?per_page=500&page=1&sort=asc")
        .send()
        .await
        .unwrap();
    let h = r.headers().clone();
    assert_eq!(h["x-total"], "131");
    assert_eq!(h["x-per-page"], "100");
    assert_eq!(h["x-next-page"], "2");
    assert_eq!(h["x-total-pages"], "2");
    assert_eq!(
        r.json::<Value>().await.unwrap().as_array().unwrap().len(),
        100
    );
    let r = c
        .req(reqwest::Method::GET, "/users?per_page=100&page=2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-next-page"], "");
    assert_eq!(
        r.json::<Value>().await.unwrap().as_array().unwrap().len(),
        31
    );
    let r = c
        .http
        .get(format!("{}/users", c.base))
        .header("PRIVATE-TOKEN", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "401 Unauthorized"
    );
    let r = c
        .http
        .get(format!("{}/users?username=u001", c.base))
        .bearer_auth("glpat-test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()[0]["username"], "u001");
    assert_eq!(
        reqwest::get(format!("{}/-/readiness", d.url()))
            .await
            .unwrap()
            .status(),
        200
    );
    d.faults().set_health(Some(503));
    assert_eq!(
        reqwest::get(format!("{}/-/readiness", d.url()))
            .await
            .unwrap()
            .status(),
        503
    );
    d.assert_no_violations();
}

#[tokio::test]
async fn validation_and_wrong_requests() {
    let d = start().await;
    let c = Client::new(&d);
    use reqwest::Method as M;
    // Missing password options → 400; short password → 400 with the field.
    let r = c
        .req(M::POST, "/users")
        .json(&json!({"email": "b@example.com", "name": "B", "username": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .req(M::POST, "/users")
        .json(&json!({"email": "b@example.com", "name": "B", "username": "b", "password": "short"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["message"]["password"].is_array());
    // A form body works like JSON (Grape), values coerced by the schema.
    let r = c
        .req(M::POST, "/users")
        .form(&[
            ("email", "c@example.com"),
            ("name", "C"),
            ("username", "c"),
            ("password", "long-password"),
            ("admin", "true"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(d.user_by_username("c").unwrap().admin);
    d.assert_no_violations();
    // Wrong types, a missing required field, an unknown filter, an undocumented route.
    let _ = c
        .req(M::POST, "/users")
        .json(&json!({"email": "d@example.com", "name": "D", "username": "d", "password": "long-password", "admin": "yes"}))
        .send()
        .await
        .unwrap();
    let _ = c
        .req(M::POST, "/users")
        .json(&json!({"email": "e@example.com", "name": "E", "password": "long-password"}))
        .send()
        .await
        .unwrap();
    let _ = c.req(M::GET, "/users?user_name=c").send().await.unwrap();
    let _ = c.req(M::GET, "/users/abc").send().await.unwrap();
    let _ = c.req(M::POST, "/users/2/lock").send().await.unwrap();
    let v = d.take_violations();
    let all: Vec<String> = v.iter().map(ToString::to_string).collect();
    assert_eq!(v.len(), 5, "{all:#?}");
    assert!(all[0].contains("admin"), "{all:#?}");
    assert!(all[1].contains("username"), "{all:#?}");
    assert!(all[2].contains("`user_name`"), "{all:#?}");
    assert!(all[3].contains("path parameter `id`"), "{all:#?}");
    assert!(all[4].contains("not documented"), "{all:#?}");
}
