//! Tests of the LLDAP double through its real interfaces (HTTP with reqwest, LDAP with ldap3).

use std::time::{Duration, Instant};

use ldap3::exop::PasswordModify;
use ldap3::{LdapConnAsync, LdapConnSettings};
use paas_doubles::lldap::{AttributeType, LldapConfig, LldapDouble, SeedUser};
use reqwest::StatusCode;
use serde_json::{json, Value};

const ADMIN_PW: &str = "admin-secret-pw";

async fn start() -> LldapDouble {
    LldapDouble::start(LldapConfig::new(ADMIN_PW))
        .await
        .expect("start the double")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

async fn login(d: &LldapDouble, user: &str, pw: &str) -> reqwest::Response {
    client()
        .post(format!("{}/auth/simple/login", d.http_url()))
        .json(&json!({"username": user, "password": pw}))
        .send()
        .await
        .expect("login request")
}

async fn admin_token(d: &LldapDouble) -> String {
    let r = login(d, "admin", ADMIN_PW).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("login json");
    assert!(v["refreshToken"]
        .as_str()
        .is_some_and(|t| t.ends_with("+admin")));
    v["token"].as_str().expect("token").to_owned()
}

async fn gql_raw(d: &LldapDouble, token: &str, body: Value) -> (StatusCode, Value) {
    let r = client()
        .post(format!("{}/api/graphql", d.http_url()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("graphql request");
    let status = r.status();
    let text = r.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

async fn gql(d: &LldapDouble, token: &str, query: &str, variables: Value) -> Value {
    let (status, v) = gql_raw(d, token, json!({"query": query, "variables": variables})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

fn error_message(v: &Value) -> String {
    v["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

const CREATE_USER: &str = "mutation CreateUser($user: CreateUserInput!) { createUser(user: $user) { id email displayName } }";

#[tokio::test]
async fn invalid_documents_are_rejected_and_recorded() {
    let d = start().await;
    let t = admin_token(&d).await;
    let (status, v) = gql_raw(&d, &t, json!({"query": "{ users { id nickname } }"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["data"].is_null());
    assert!(error_message(&v).contains("nickname"), "{v}");
    let violations = d.take_violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].message.contains("nickname"));

    // Syntax error.
    let (status, _) = gql_raw(&d, &t, json!({"query": "{ users { id "})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Wrong argument type.
    let (status, _) = gql_raw(&d, &t, json!({"query": "{ group(groupId: \"x\") { id } }"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(d.take_violations().len(), 2);

    // Variables: unknown input field, missing required variable, wrong type.
    for vars in [
        json!({"user": {"id": "a", "email": "a@x", "nickname": "n"}}),
        json!({}),
        json!({"user": {"id": 5, "email": "a@x"}}),
        json!({"user": {"email": "a@x"}}),
    ] {
        let (status, v) = gql_raw(&d, &t, json!({"query": CREATE_USER, "variables": vars})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{vars}: {v}");
    }
    let violations = d.take_violations();
    assert_eq!(violations.len(), 4, "{violations:?}");
    assert!(
        violations[0].message.contains("nickname"),
        "{}",
        violations[0]
    );
    assert!(d.with_state(|s| s.user("a").is_none()));

    // Valid requests record nothing.
    gql(&d, &t, "query { apiVersion }", Value::Null).await;
    d.assert_no_violations();
}

#[tokio::test]
async fn authentication_like_lldap() {
    let d = start().await;
    let r = login(&d, "admin", "wrong").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().starts_with("Authentication error"));
    let r = login(&d, "nobody", "x").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let url = format!("{}/api/graphql", d.http_url());
    let body = json!({"query": "{ apiVersion }"});
    let r = client().post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client()
        .post(&url)
        .bearer_auth("abc.def.ghi")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.text().await.unwrap(), "Invalid JWT");

    // Login is case-insensitive on the user id.
    let r = login(&d, "ADMIN", ADMIN_PW).await;
    assert_eq!(r.status(), StatusCode::OK);

    // Token expiry after N requests: the client must log in again.
    let t = admin_token(&d).await;
    d.faults().expire_tokens_after(2);
    for _ in 0..2 {
        gql(&d, &t, "{ apiVersion }", Value::Null).await;
    }
    let r = client()
        .post(&url)
        .bearer_auth(&t)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.text().await.unwrap(), "Expired JWT");
    let t2 = admin_token(&d).await;
    let v = gql(&d, &t2, "{ apiVersion }", Value::Null).await;
    assert_eq!(v["data"]["apiVersion"], "1.0");
    assert_eq!(d.stats().unauthorized, 3);

    // A non-admin user can log in but cannot administer.
    d.seed_user(SeedUser {
        password: Some("bobpw".into()),
        ..SeedUser::new("bob", "bob@example.com")
    })
    .unwrap();
    let r = login(&d, "bob", "bobpw").await;
    let bt = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = gql(
        &d,
        &bt,
        CREATE_USER,
        json!({"user": {"id": "eve", "email": "eve@x"}}),
    )
    .await;
    assert_eq!(error_message(&v), "Unauthorized user creation");
    let v = gql(&d, &bt, "{ users { id } }", Value::Null).await;
    assert_eq!(error_message(&v), "Unauthorized access to user list");
    let v = gql(&d, &bt, "{ user(userId: \"bob\") { id } }", Value::Null).await;
    assert_eq!(v["data"]["user"]["id"], "bob");
    d.assert_no_violations();
}

#[tokio::test]
async fn create_user_semantics() {
    let d = start().await;
    let t = admin_token(&d).await;
    let v = gql(
        &d,
        &t,
        CREATE_USER,
        json!({"user": {"id": "Alice", "email": "Alice@Example.com", "displayName": "Alice A"}}),
    )
    .await;
    assert_eq!(
        v["data"]["createUser"],
        json!({"id": "alice", "email": "Alice@Example.com", "displayName": "Alice A"})
    );

    // No e-mail.
    let v = gql(&d, &t, CREATE_USER, json!({"user": {"id": "bob"}})).await;
    assert!(v["data"].is_null(), "{v}");
    assert_eq!(
        error_message(&v),
        "Email is required when creating a new user"
    );
    assert_eq!(v["errors"][0]["path"], json!(["createUser"]));
    assert!(v["errors"][0]["locations"][0]["line"].is_number());

    // Duplicate id (case-insensitive) and duplicate e-mail (case-insensitive).
    let v = gql(
        &d,
        &t,
        CREATE_USER,
        json!({"user": {"id": "ALICE", "email": "other@example.com"}}),
    )
    .await;
    let m = error_message(&v);
    assert!(
        m.starts_with("Database error: `") && m.contains("UNIQUE"),
        "{m}"
    );
    let v = gql(
        &d,
        &t,
        CREATE_USER,
        json!({"user": {"id": "alice2", "email": "alice@example.COM"}}),
    )
    .await;
    assert!(error_message(&v).contains("UNIQUE"), "{v}");

    // Missing user.
    let v = gql(
        &d,
        &t,
        "query($id: String!) { user(userId: $id) { id } }",
        json!({"id": "Ghost"}),
    )
    .await;
    assert_eq!(error_message(&v), "Entity not found: `ghost`");
    assert!(v["data"].is_null());

    // Attributes: unknown, wrong cardinality, read-only; email via the `mail` attribute.
    for (attrs, expect) in [
        (
            json!([{"name": "shoeSize", "value": ["42"]}]),
            "Attribute shoesize is not defined in the schema",
        ),
        (
            json!([{"name": "first_name", "value": ["a", "b"]}]),
            "While deserializing attribute first_name",
        ),
        (
            json!([{"name": "uuid", "value": ["x"]}]),
            "Permission denied: Attribute uuid is read-only",
        ),
    ] {
        let v = gql(
            &d,
            &t,
            CREATE_USER,
            json!({"user": {"id": "carol", "email": "carol@x", "attributes": attrs}}),
        )
        .await;
        assert_eq!(error_message(&v), expect);
    }
    let v = gql(&d, &t, CREATE_USER, json!({"user": {"id": "dave", "firstName": "Dave", "attributes": [{"name": "mail", "value": ["dave@x"]}, {"name": "first_name", "value": ["David"]}]}})).await;
    assert_eq!(v["data"]["createUser"]["email"], "dave@x");
    let dave = d.user("dave").unwrap();
    assert_eq!(
        dave.first_name.as_deref(),
        Some("David"),
        "the attribute wins over the field"
    );
    assert_eq!(d.users().len(), 3);
    d.assert_no_violations();
}

#[tokio::test]
async fn projection_follows_the_selection_set() {
    let d = start().await;
    let t = admin_token(&d).await;
    d.seed_user(SeedUser {
        display_name: Some("Bob B".into()),
        first_name: Some("Bob".into()),
        groups: vec!["devs".into()],
        ..SeedUser::new("bob", "bob@example.com")
    })
    .unwrap();
    let q = r#"
        fragment G on Group { gid: id displayName }
        query One($id: String!) {
          me: user(userId: $id) {
            __typename
            login: id
            firstName
            avatar
            groups { ...G __typename }
            ... on User { email }
          }
        }
        query Two { groups { displayName } }
    "#;
    let (status, v) = gql_raw(
        &d,
        &t,
        json!({"query": q, "variables": {"id": "bob"}, "operationName": "One"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v,
        json!({"data": {"me": {
            "__typename": "User", "login": "bob", "firstName": "Bob", "avatar": null,
            "groups": [{"gid": 4, "displayName": "devs", "__typename": "Group"}],
            "email": "bob@example.com"
        }}})
    );
    // Key order is the selection order.
    let keys: Vec<&String> = v["data"]["me"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "__typename",
            "login",
            "firstName",
            "avatar",
            "groups",
            "email"
        ]
    );

    let (_, v) = gql_raw(&d, &t, json!({"query": q, "operationName": "Two"})).await;
    let names: Vec<&str> = v["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "lldap_admin",
            "lldap_password_manager",
            "lldap_strict_readonly",
            "devs"
        ]
    );

    // Introspection is served, like juniper does.
    let v = gql(
        &d,
        &t,
        "{ __typename __schema { queryType { name } } __type(name: \"User\") { fields { name } } }",
        Value::Null,
    )
    .await;
    assert_eq!(v["data"]["__typename"], "Query");
    assert_eq!(v["data"]["__schema"]["queryType"]["name"], "Query");
    assert_eq!(v["data"]["__type"]["fields"].as_array().unwrap().len(), 10);

    // Two operations without operationName: a request error.
    let (status, _) = gql_raw(&d, &t, json!({"query": q, "variables": {"id": "bob"}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(d.take_violations().len(), 1);

    // Attributes with their schema; hard-coded ones are included like LLDAP does.
    let v = gql(&d, &t, "{ user(userId: \"bob\") { attributes { name value schema { attributeType isHardcoded isReadonly } } } }", Value::Null).await;
    let attrs = v["data"]["user"]["attributes"].as_array().unwrap();
    let names: Vec<&str> = attrs.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "creation_date",
            "display_name",
            "mail",
            "modified_date",
            "password_modified_date",
            "user_id",
            "uuid",
            "first_name"
        ]
    );
    assert_eq!(attrs[2]["value"], json!(["bob@example.com"]));
    assert_eq!(attrs[0]["schema"]["attributeType"], "DATE_TIME");
    assert_eq!(attrs[5]["schema"]["isReadonly"], true);

    let v = gql(&d, &t, "{ schema { userSchema { attributes { name isHardcoded } ldapObjectClasses { objectClass isHardcoded } extraLdapObjectClasses } groupSchema { attributes { name } } } }", Value::Null).await;
    let us = &v["data"]["schema"]["userSchema"];
    assert_eq!(us["attributes"].as_array().unwrap().len(), 10);
    assert_eq!(us["ldapObjectClasses"][0]["objectClass"], "inetOrgPerson");
    assert_eq!(
        v["data"]["schema"]["groupSchema"]["attributes"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    d.assert_no_violations();
}

const UPDATE_USER: &str = "mutation U($user: UpdateUserInput!) { updateUser(user: $user) { ok } }";

#[tokio::test]
async fn update_user_and_attributes() {
    let d = start().await;
    let t = admin_token(&d).await;
    d.seed_user(SeedUser::new("bob", "bob@example.com"))
        .unwrap();
    d.seed_user(SeedUser::new("carol", "carol@example.com"))
        .unwrap();
    let add = "mutation($n: String!, $t: AttributeType!, $l: Boolean!) { addUserAttribute(name: $n, attributeType: $t, isList: $l, isVisible: true, isEditable: false) { ok } }";
    let v = gql(
        &d,
        &t,
        add,
        json!({"n": "quota", "t": "INTEGER", "l": false}),
    )
    .await;
    assert_eq!(v["data"]["addUserAttribute"]["ok"], true);
    gql(
        &d,
        &t,
        add,
        json!({"n": "aliases", "t": "STRING", "l": true}),
    )
    .await;
    let v = gql(
        &d,
        &t,
        add,
        json!({"n": "bad_name", "t": "STRING", "l": true}),
    )
    .await;
    assert!(error_message(&v).contains("Invalid chars found: _"), "{v}");
    let v = gql(
        &d,
        &t,
        add,
        json!({"n": "Quota", "t": "INTEGER", "l": false}),
    )
    .await;
    assert!(error_message(&v).contains("UNIQUE"), "{v}");

    let v = gql(&d, &t, UPDATE_USER, json!({"user": {
        "id": "BOB", "email": "bob2@example.com", "displayName": "Bobby", "lastName": "B",
        "insertAttributes": [{"name": "quota", "value": ["10"]}, {"name": "aliases", "value": ["b1", "b2"]}]
    }})).await;
    assert_eq!(v["data"]["updateUser"]["ok"], true, "{v}");
    let bob = d.user("bob").unwrap();
    assert_eq!(bob.email, "bob2@example.com");
    assert_eq!(bob.display_name.as_deref(), Some("Bobby"));
    assert_eq!(bob.attributes["quota"], ["10"]);
    assert_eq!(bob.attributes["aliases"], ["b1", "b2"]);
    assert_eq!(bob.last_name.as_deref(), Some("B"));

    for (user, expect) in [
        (
            json!({"id": "bob", "insertAttributes": [{"name": "nope", "value": ["1"]}]}),
            "Attribute nope is not defined in the schema",
        ),
        (
            json!({"id": "bob", "insertAttributes": [{"name": "quota", "value": ["1", "2"]}]}),
            "While deserializing attribute quota",
        ),
        (
            json!({"id": "bob", "insertAttributes": [{"name": "quota", "value": ["ten"]}]}),
            "While deserializing attribute quota",
        ),
        (
            json!({"id": "bob", "insertAttributes": [{"name": "quota", "value": []}]}),
            "While deserializing attribute quota",
        ),
        (json!({"id": "bob", "email": "carol@example.com"}), "UNIQUE"),
        (
            json!({"id": "ghost", "displayName": "x"}),
            "Database error: `None of the records are updated`",
        ),
    ] {
        let v = gql(&d, &t, UPDATE_USER, json!({"user": user})).await;
        assert!(error_message(&v).contains(expect), "{user}: {v}");
        assert!(v["data"].is_null());
    }
    // removeAttributes is processed before insertAttributes; [""] removes too.
    let v = gql(&d, &t, UPDATE_USER, json!({"user": {"id": "bob", "removeAttributes": ["aliases", "quota"], "insertAttributes": [{"name": "aliases", "value": ["b3"]}, {"name": "last_name", "value": [""]}]}})).await;
    assert_eq!(v["data"]["updateUser"]["ok"], true, "{v}");
    let bob = d.user("bob").unwrap();
    assert_eq!(bob.attributes.get("aliases").unwrap(), &["b3"]);
    assert!(!bob.attributes.contains_key("quota"));
    assert!(bob.last_name.is_none());

    // Attribute deletion: hard-coded ones are refused, custom ones drop the values.
    let del = "mutation($n: String!) { deleteUserAttribute(name: $n) { ok } }";
    let v = gql(&d, &t, del, json!({"n": "first_name"})).await;
    assert_eq!(
        error_message(&v),
        "Permission denied: Attribute first_name cannot be deleted"
    );
    let v = gql(&d, &t, del, json!({"n": "mail"})).await;
    assert_eq!(
        error_message(&v),
        "Permission denied: Attribute mail cannot be deleted"
    );
    let v = gql(&d, &t, del, json!({"n": "nothing"})).await;
    assert_eq!(
        error_message(&v),
        "Attribute nothing is not defined in the schema"
    );
    let v = gql(&d, &t, del, json!({"n": "aliases"})).await;
    assert_eq!(v["data"]["deleteUserAttribute"]["ok"], true);
    assert!(!d.user("bob").unwrap().attributes.contains_key("aliases"));

    // Group attributes.
    let v = gql(&d, &t, "mutation { addGroupAttribute(name: \"gidNumber\", attributeType: INTEGER, isList: false, isVisible: true, isEditable: false) { ok } }", Value::Null).await;
    assert_eq!(v["data"]["addGroupAttribute"]["ok"], true);
    let v = gql(&d, &t, "mutation { createGroupWithDetails(request: {displayName: \"ops\", attributes: [{name: \"gidnumber\", value: [\"5000\"]}]}) { id displayName attributes { name value } } }", Value::Null).await;
    let g = &v["data"]["createGroupWithDetails"];
    assert_eq!(g["displayName"], "ops");
    assert_eq!(
        g["attributes"].as_array().unwrap().last().unwrap(),
        &json!({"name": "gidnumber", "value": ["5000"]})
    );
    let v = gql(
        &d,
        &t,
        "mutation { deleteGroupAttribute(name: \"group_id\") { ok } }",
        Value::Null,
    )
    .await;
    assert!(error_message(&v).contains("cannot be deleted"));
    d.assert_no_violations();
}

#[tokio::test]
async fn groups_memberships_and_filters() {
    let d = start().await;
    let t = admin_token(&d).await;
    for u in ["alice", "bob", "carol"] {
        d.seed_user(SeedUser::new(u, format!("{u}@example.com")))
            .unwrap();
    }
    let create = "mutation($n: String!) { createGroup(name: $n) { id displayName } }";
    let v = gql(&d, &t, create, json!({"n": "Devs"})).await;
    let devs = v["data"]["createGroup"]["id"].as_i64().unwrap();
    assert_eq!(devs, 4);
    let v = gql(&d, &t, create, json!({"n": "devs"})).await;
    assert!(
        error_message(&v).starts_with("Database error: `") && error_message(&v).contains("UNIQUE")
    );
    let ops = gql(&d, &t, create, json!({"n": "ops"})).await["data"]["createGroup"]["id"]
        .as_i64()
        .unwrap();

    let add = "mutation($u: String!, $g: Int!) { addUserToGroup(userId: $u, groupId: $g) { ok } }";
    for (u, g) in [("alice", devs), ("Bob", devs), ("bob", ops)] {
        let v = gql(&d, &t, add, json!({"u": u, "g": g})).await;
        assert_eq!(v["data"]["addUserToGroup"]["ok"], true, "{v}");
    }
    let v = gql(&d, &t, add, json!({"u": "ghost", "g": devs})).await;
    assert!(error_message(&v).contains("FOREIGN KEY"), "{v}");
    let v = gql(&d, &t, add, json!({"u": "alice", "g": 999})).await;
    assert!(error_message(&v).contains("FOREIGN KEY"), "{v}");
    let v = gql(&d, &t, add, json!({"u": "alice", "g": devs})).await;
    assert!(error_message(&v).contains("UNIQUE"), "{v}");

    let users = "query($f: RequestFilter) { users(filters: $f) { id } }";
    let ids = |v: &Value| -> Vec<String> {
        v["data"]["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .collect()
    };
    for (filter, expect) in [
        (json!({"memberOf": "DEVS"}), vec!["alice", "bob"]),
        (json!({"memberOfId": ops}), vec!["bob"]),
        (
            json!({"eq": {"field": "email", "value": "CAROL@example.com"}}),
            vec!["carol"],
        ),
        (
            json!({"eq": {"field": "uid", "value": "Alice"}}),
            vec!["alice"],
        ),
        (json!({"not": {"memberOf": "devs"}}), vec!["admin", "carol"]),
        (
            json!({"all": [{"memberOf": "devs"}, {"memberOf": "ops"}]}),
            vec!["bob"],
        ),
        (
            json!({"any": [{"memberOfId": ops}, {"eq": {"field": "id", "value": "carol"}}]}),
            vec!["bob", "carol"],
        ),
    ] {
        let v = gql(&d, &t, users, json!({"f": filter})).await;
        assert_eq!(ids(&v), expect, "{filter}");
    }
    let v = gql(
        &d,
        &t,
        users,
        json!({"f": {"memberOf": "devs", "memberOfId": 1}}),
    )
    .await;
    assert_eq!(
        error_message(&v),
        "Multiple fields specified in request filter"
    );
    let v = gql(
        &d,
        &t,
        users,
        json!({"f": {"eq": {"field": "shoe", "value": "1"}}}),
    )
    .await;
    assert_eq!(error_message(&v), "Unknown request filter: shoe");

    let v = gql(
        &d,
        &t,
        "query($g: Int!) { group(groupId: $g) { displayName users { id } } }",
        json!({"g": devs}),
    )
    .await;
    assert_eq!(
        v["data"]["group"],
        json!({"displayName": "Devs", "users": [{"id": "alice"}, {"id": "bob"}]})
    );
    let v = gql(&d, &t, "{ group(groupId: 77) { id } }", Value::Null).await;
    assert_eq!(error_message(&v), "Entity not found: `GroupId(77)`");

    // Rename, remove membership, delete.
    let upd = "mutation($g: UpdateGroupInput!) { updateGroup(group: $g) { ok } }";
    let v = gql(
        &d,
        &t,
        upd,
        json!({"g": {"id": devs, "displayName": "developers"}}),
    )
    .await;
    assert_eq!(v["data"]["updateGroup"]["ok"], true);
    let v = gql(
        &d,
        &t,
        upd,
        json!({"g": {"id": 1, "displayName": "admins"}}),
    )
    .await;
    assert_eq!(error_message(&v), "Cannot change lldap_admin group name");
    let v = gql(
        &d,
        &t,
        upd,
        json!({"g": {"id": ops, "displayName": "Developers"}}),
    )
    .await;
    assert!(error_message(&v).contains("UNIQUE"));
    let rm =
        "mutation($u: String!, $g: Int!) { removeUserFromGroup(userId: $u, groupId: $g) { ok } }";
    let v = gql(&d, &t, rm, json!({"u": "alice", "g": devs})).await;
    assert_eq!(v["data"]["removeUserFromGroup"]["ok"], true);
    let v = gql(&d, &t, rm, json!({"u": "alice", "g": devs})).await;
    assert!(
        error_message(&v).starts_with("Entity not found: `No such membership"),
        "{v}"
    );
    let v = gql(&d, &t, rm, json!({"u": "admin", "g": 1})).await;
    assert_eq!(
        error_message(&v),
        "Cannot remove admin rights for current user"
    );
    assert_eq!(d.group("developers").unwrap().members, ["bob"]);

    let delg = "mutation($g: Int!) { deleteGroup(groupId: $g) { ok } }";
    let v = gql(&d, &t, delg, json!({"g": 1})).await;
    assert_eq!(error_message(&v), "Cannot delete admin group");
    let v = gql(&d, &t, delg, json!({"g": ops})).await;
    assert_eq!(v["data"]["deleteGroup"]["ok"], true);
    let v = gql(&d, &t, delg, json!({"g": ops})).await;
    assert!(error_message(&v).starts_with("Entity not found"));
    assert_eq!(d.user("bob").unwrap().groups, ["developers"]);

    // Users: delete self refused, delete cascades memberships.
    let delu = "mutation($u: String!) { deleteUser(userId: $u) { ok } }";
    let v = gql(&d, &t, delu, json!({"u": "Admin"})).await;
    assert_eq!(error_message(&v), "Cannot delete current user");
    let v = gql(&d, &t, delu, json!({"u": "bob"})).await;
    assert_eq!(v["data"]["deleteUser"]["ok"], true);
    let v = gql(&d, &t, delu, json!({"u": "bob"})).await;
    assert_eq!(error_message(&v), "Entity not found: `No such user: 'bob'`");
    assert!(d.group("developers").unwrap().members.is_empty());

    // Several mutations in one document run in order; one failing does not undo the others.
    let v = gql(
        &d,
        &t,
        "mutation { a: createGroup(name: \"x1\") { id } b: deleteGroup(groupId: 1) { ok } }",
        Value::Null,
    )
    .await;
    assert!(v["data"].is_null());
    assert!(d.group("x1").is_some());
    let s = d.stats();
    assert_eq!(s.mutations("createGroup"), 4);
    assert_eq!(s.mutations("deleteUser"), 3);
    d.assert_no_violations();
}

#[tokio::test]
async fn faults_are_injected() {
    let d = start().await;
    let t = admin_token(&d).await;
    let body = json!({"query": "{ apiVersion }"});
    let url = format!("{}/api/graphql", d.http_url());

    d.faults().fail_next(2, 502);
    for _ in 0..2 {
        let r = client()
            .post(&url)
            .bearer_auth(&t)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    }
    let r = client()
        .post(&url)
        .bearer_auth(&t)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    d.faults().reset_next(1);
    let err = client()
        .post(&url)
        .bearer_auth(&t)
        .json(&body)
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_status(), "{err}");
    let r = client()
        .post(&url)
        .bearer_auth(&t)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    d.faults().truncate_next(1);
    let r = client()
        .post(&url)
        .bearer_auth(&t)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");

    d.faults().set_delay(Duration::from_millis(300));
    let start = Instant::now();
    let r = client()
        .post(&url)
        .bearer_auth(&t)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(start.elapsed() >= Duration::from_millis(300));
    d.faults().clear();

    // Control endpoint: same faults over HTTP.
    let r = client()
        .post(format!("{}/__double/faults", d.http_url()))
        .json(&json!({"failNext": 1, "failStatus": 500}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client()
        .post(&url)
        .bearer_auth(&t)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);

    // A typo in a control request is refused, not ignored.
    let r = client()
        .post(format!("{}/__double/faults", d.http_url()))
        .json(&json!({"failnext": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let stats: Value = client()
        .get(format!("{}/__double/stats", d.http_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"]["POST /api/graphql"], 8);
    assert_eq!(stats["faultsInjected"]["http_502"], 2);
    assert_eq!(stats["faultsInjected"]["http_reset"], 1);
    assert!(stats["requestBytes"].as_u64().unwrap() > 0);
    assert!(stats["responseBytes"].as_u64().unwrap() > 0);
    d.reset_stats();
    assert_eq!(d.stats().total_requests(), 0);
}

#[tokio::test]
async fn control_endpoints_seed_and_dump_state() {
    let d = start().await;
    let http = client();
    let r = http
        .post(format!("{}/__double/users", d.http_url()))
        .json(
            &json!({"id": "Zed", "email": "zed@example.com", "groups": ["g1"], "password": "zpw"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = http
        .post(format!("{}/__double/seed", d.http_url()))
        .json(&json!({"users": 25}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let state: Value = http
        .get(format!("{}/__double/state", d.http_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["users"].as_array().unwrap().len(), 27);
    let zed = state["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == "zed")
        .unwrap();
    assert_eq!(zed["groups"], json!(["g1"]));
    assert_eq!(zed["hasPassword"], true);
    assert_eq!(zed["passwordSetCount"], 0);
    assert!(d.check_password("zed", "zpw"));
    assert_eq!(d.memberships().iter().filter(|(_, g)| g == "g1").count(), 1);
    // Control requests are not counted as LLDAP traffic.
    assert_eq!(d.stats().total_requests(), 0);
}

async fn ldap_conn(d: &LldapDouble) -> ldap3::Ldap {
    let settings = LdapConnSettings::new().set_conn_timeout(Duration::from_secs(5));
    let (conn, ldap) = LdapConnAsync::with_settings(settings, &d.ldap_url())
        .await
        .expect("ldap connect");
    ldap3::drive!(conn);
    ldap
}

#[tokio::test]
async fn ldap_bind_and_password_modify() {
    let d = start().await;
    d.seed_user(SeedUser::new("bob", "bob@example.com"))
        .unwrap();
    d.seed_user(SeedUser {
        password: Some("carolpw".into()),
        ..SeedUser::new("carol", "carol@example.com")
    })
    .unwrap();

    let mut ldap = ldap_conn(&d).await;
    // Wrong password, unknown user, user without password, bad DN.
    let r = ldap
        .simple_bind(&d.user_dn("admin"), "wrong")
        .await
        .unwrap();
    assert_eq!(r.rc, 49);
    let r = ldap.simple_bind(&d.user_dn("ghost"), "x").await.unwrap();
    assert_eq!(r.rc, 49);
    let r = ldap.simple_bind(&d.user_dn("bob"), "").await.unwrap();
    assert_eq!(r.rc, 49);
    let r = ldap
        .simple_bind("uid=admin,ou=groups,dc=example,dc=com", ADMIN_PW)
        .await
        .unwrap();
    assert_eq!(r.rc, 64);
    // Not bound: no password change.
    let r = ldap
        .extended(PasswordModify {
            user_id: Some(&d.user_dn("bob")),
            old_pass: None,
            new_pass: Some("x"),
        })
        .await
        .unwrap();
    assert_eq!(r.1.rc, 50);

    ldap.simple_bind(&format!("cn=admin,ou=people,{}", d.base_dn()), ADMIN_PW)
        .await
        .unwrap()
        .success()
        .unwrap();
    ldap.extended(PasswordModify {
        user_id: Some(&d.user_dn("Bob")),
        old_pass: None,
        new_pass: Some("bob-new-pw"),
    })
    .await
    .unwrap()
    .success()
    .unwrap();
    assert_eq!(d.password_set_count("bob"), 1);
    assert!(d.check_password("bob", "bob-new-pw"));
    let r = ldap
        .extended(PasswordModify {
            user_id: Some(&d.user_dn("ghost")),
            old_pass: None,
            new_pass: Some("x"),
        })
        .await
        .unwrap();
    assert_eq!(
        r.1.rc, 1,
        "LLDAP fails reading the groups of an unknown user"
    );
    let r = ldap
        .extended(PasswordModify {
            user_id: Some("bob"),
            old_pass: None,
            new_pass: Some("x"),
        })
        .await
        .unwrap();
    assert_eq!(r.1.rc, 34);
    let r = ldap
        .extended(PasswordModify {
            user_id: Some(&d.user_dn("bob")),
            old_pass: None,
            new_pass: None,
        })
        .await
        .unwrap();
    assert_eq!(r.1.rc, 19);
    ldap.unbind().await.unwrap();

    // A regular user: may change its own password, not someone else's.
    let mut ldap = ldap_conn(&d).await;
    ldap.simple_bind(&d.user_dn("bob"), "bob-new-pw")
        .await
        .unwrap()
        .success()
        .unwrap();
    let r = ldap
        .extended(PasswordModify {
            user_id: Some(&d.user_dn("carol")),
            old_pass: None,
            new_pass: Some("x"),
        })
        .await
        .unwrap();
    assert_eq!(r.1.rc, 50);
    assert!(d.check_password("carol", "carolpw"));
    ldap.extended(PasswordModify {
        user_id: Some(&d.user_dn("bob")),
        old_pass: Some("bob-new-pw"),
        new_pass: Some("bob-3"),
    })
    .await
    .unwrap()
    .success()
    .unwrap();
    assert_eq!(d.password_set_count("bob"), 2);
    // Unsupported operation.
    let r = ldap.delete(&d.user_dn("carol")).await.unwrap();
    assert_eq!(r.rc, 53);
    ldap.unbind().await.unwrap();

    let s = d.stats();
    assert_eq!(s.ldap_ops("bind"), 6);
    assert_eq!(s.ldap_ops("bind_ok"), 2);
    assert_eq!(s.ldap_ops("password_modify_ok"), 2);
    assert_eq!(s.ldap_ops("password_modify"), 7);

    // Faults on LDAP: reset, unavailable, delay.
    d.faults().ldap_reset_next(1);
    let mut ldap = ldap_conn(&d).await;
    let r = ldap.simple_bind(&d.user_dn("admin"), ADMIN_PW).await;
    assert!(r.as_ref().map_or(true, |r| r.rc != 0), "{r:?}");
    d.faults().ldap_unavailable_next(1);
    let mut ldap = ldap_conn(&d).await;
    assert_eq!(
        ldap.simple_bind(&d.user_dn("admin"), ADMIN_PW)
            .await
            .unwrap()
            .rc,
        52
    );
    d.faults().set_ldap_delay(Duration::from_millis(200));
    let start = Instant::now();
    ldap.simple_bind(&d.user_dn("admin"), ADMIN_PW)
        .await
        .unwrap()
        .success()
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn ten_thousand_users_listing_is_fast() {
    let d = start().await;
    d.add_user_attribute("quota", AttributeType::Integer, false)
        .unwrap();
    d.seed_users(10_000).unwrap();
    let t = admin_token(&d).await;
    let q = "query ListUsers { users { id email displayName firstName lastName creationDate uuid attributes { name value } groups { id displayName } } }";
    // Warm-up, then measure until the whole body is received (parsing is the client's cost).
    gql(&d, &t, q, Value::Null).await;
    let http = client();
    let start = Instant::now();
    let body = http
        .post(format!("{}/api/graphql", d.http_url()))
        .bearer_auth(&t)
        .json(&json!({"query": q}))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let elapsed = start.elapsed();
    let v: Value = serde_json::from_slice(&body).unwrap();
    let users = v["data"]["users"].as_array().unwrap();
    assert_eq!(users.len(), 10_001);
    assert_eq!(users[1]["attributes"].as_array().unwrap().len(), 9);
    assert_eq!(users[1]["groups"][0]["displayName"], "seed_group_0");
    eprintln!("response size: {} bytes", body.len());
    let limit = if cfg!(debug_assertions) {
        Duration::from_secs(15)
    } else {
        Duration::from_millis(1000)
    };
    eprintln!("listing 10,001 users with attributes and groups took {elapsed:?}");
    assert!(elapsed < limit, "took {elapsed:?}");
    d.assert_no_violations();
}

#[tokio::test]
async fn other_request_forms_lldap_accepts() {
    let d = start().await;
    let r = login(&d, "admin", ADMIN_PW).await;
    let v: Value = r.json().await.unwrap();
    let token = v["token"].as_str().unwrap().to_owned();
    let refresh = v["refreshToken"].as_str().unwrap().to_owned();
    let url = format!("{}/api/graphql", d.http_url());

    // GET with query parameters.
    let r = client()
        .get(&url)
        .bearer_auth(&token)
        .query(&[
            (
                "query",
                "query Q($id: String!) { user(userId: $id) { id } }",
            ),
            ("variables", r#"{"id": "admin"}"#),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap()["data"]["user"]["id"],
        "admin"
    );

    // application/graphql body, token in a cookie.
    let r = client()
        .post(&url)
        .header("content-type", "application/graphql")
        .header("cookie", format!("other=1; token={token}"))
        .body("{ apiVersion }")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap()["data"]["apiVersion"],
        "1.0"
    );

    // Batch.
    let (status, v) = gql_raw(
        &d,
        &token,
        json!([{"query": "{ apiVersion }"}, {"query": "{ groups { id } }"}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v[1]["data"]["groups"].as_array().unwrap().len(), 3);

    // A wrong content type is a contract violation.
    let r = client()
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("{ apiVersion }")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(d.take_violations().len(), 1);

    // Refresh gives a new working token, also after tokens expired.
    d.faults().expire_tokens_now();
    let (status, _) = gql_raw(&d, &token, json!({"query": "{ apiVersion }"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let r = client()
        .get(format!("{}/auth/refresh", d.http_url()))
        .header("refresh-token", &refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let fresh = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = gql(&d, &fresh, "{ apiVersion }", Value::Null).await;
    assert_eq!(v["data"]["apiVersion"], "1.0");
    let r = client()
        .get(format!("{}/auth/refresh", d.http_url()))
        .header("refresh-token", "bogus+admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    d.assert_no_violations();
}

#[tokio::test]
async fn missing_contract_fails_loudly() {
    let config = LldapConfig {
        contracts_dir: Some("/nonexistent/contracts".into()),
        ..LldapConfig::new("x")
    };
    let Err(e) = LldapDouble::start(config).await else {
        panic!("started without a contract");
    };
    let msg = e.to_string();
    assert!(
        msg.contains("/nonexistent/contracts/lldap/schema.graphql"),
        "{msg}"
    );
    assert!(msg.contains("PAAS_CONTRACTS"), "{msg}");
}

// ---- LDAP search ------------------------------------------------------------------------------

const BASE: &str = "dc=example,dc=com";
const PEOPLE: &str = "ou=people,dc=example,dc=com";
const GROUPS: &str = "ou=groups,dc=example,dc=com";

/// A search: (result code, diagnostic message, entries, size in the paged-results control).
async fn ldap_search(
    ldap: &mut ldap3::Ldap,
    base: &str,
    scope: ldap3::Scope,
    filter: &str,
    attrs: &[&str],
) -> (u32, String, Vec<ldap3::SearchEntry>, Option<i32>) {
    let ldap3::SearchResult(entries, res) = ldap
        .search(base, scope, filter, attrs.to_vec())
        .await
        .expect("search");
    let paged = res
        .ctrls
        .iter()
        .find(|c| c.1.ctype == "1.2.840.113556.1.4.319")
        .map(|c| c.1.parse::<ldap3::controls::PagedResults>().size);
    (
        res.rc,
        res.text,
        entries
            .into_iter()
            .map(ldap3::SearchEntry::construct)
            .collect(),
        paged,
    )
}

fn dns(entries: &[ldap3::SearchEntry]) -> Vec<String> {
    entries.iter().map(|e| e.dn.clone()).collect()
}

/// admin, bob (devs), carol (devs, ops; paasd-managed), dave (no group), rita (read-only).
async fn directory() -> LldapDouble {
    let d = start().await;
    d.add_user_attribute("paasd-managed", AttributeType::String, false)
        .unwrap();
    d.seed_user(SeedUser {
        display_name: Some("Bob Builder".into()),
        first_name: Some("Bob".into()),
        last_name: Some("Builder".into()),
        password: Some("bobpw".into()),
        groups: vec!["devs".into()],
        ..SeedUser::new("bob", "Bob@Example.com")
    })
    .unwrap();
    d.seed_user(SeedUser {
        groups: vec!["devs".into(), "ops".into()],
        attributes: [("paasd-managed".to_owned(), vec!["yes".to_owned()])].into(),
        ..SeedUser::new("carol", "carol@example.com")
    })
    .unwrap();
    d.seed_user(SeedUser::new("dave", "dave@example.com"))
        .unwrap();
    d.seed_user(SeedUser {
        password: Some("ritapw".into()),
        groups: vec!["lldap_strict_readonly".into()],
        ..SeedUser::new("rita", "rita@example.com")
    })
    .unwrap();
    d
}

async fn bound(d: &LldapDouble, user: &str, pw: &str) -> ldap3::Ldap {
    let mut ldap = ldap_conn(d).await;
    ldap.simple_bind(&d.user_dn(user), pw)
        .await
        .unwrap()
        .success()
        .unwrap();
    ldap
}

#[tokio::test]
async fn ldap_search_users_like_lldap() {
    use ldap3::Scope::{Base, OneLevel, Subtree};
    let d = directory().await;
    let mut ldap = bound(&d, "admin", ADMIN_PW).await;

    let attrs = [
        "uid",
        "mail",
        "cn",
        "givenName",
        "sn",
        "memberOf",
        "paasd-managed",
        "objectClass",
    ];
    let (rc, _, users, paged) =
        ldap_search(&mut ldap, PEOPLE, Subtree, "(objectClass=person)", &attrs).await;
    assert_eq!(rc, 0);
    assert_eq!(
        dns(&users),
        ["admin", "bob", "carol", "dave", "rita"].map(|u| format!("uid={u},{PEOPLE}"))
    );
    assert_eq!(
        paged,
        Some(5),
        "LLDAP's paged-results control with the count"
    );
    let bob = &users[1];
    assert_eq!(bob.attrs["uid"], ["bob"]);
    assert_eq!(bob.attrs["mail"], ["Bob@Example.com"]);
    assert_eq!(bob.attrs["cn"], ["Bob Builder"]);
    assert_eq!(bob.attrs["givenName"], ["Bob"]);
    assert_eq!(bob.attrs["sn"], ["Builder"]);
    assert_eq!(bob.attrs["memberOf"], [format!("cn=devs,{GROUPS}")]);
    assert_eq!(
        bob.attrs["objectClass"],
        ["inetOrgPerson", "posixAccount", "mailAccount", "person"]
    );
    assert!(!bob.attrs.contains_key("paasd-managed"));
    let carol = &users[2];
    assert_eq!(carol.attrs["paasd-managed"], ["yes"]);
    assert_eq!(
        carol.attrs["memberOf"],
        [format!("cn=devs,{GROUPS}"), format!("cn=ops,{GROUPS}")]
    );
    // No display name / first name: the attribute is left out; no group: memberOf has no value.
    assert!(!carol.attrs.contains_key("cn") && !carol.attrs.contains_key("givenName"));
    assert!(users[3].attrs.get("memberOf").is_none_or(Vec::is_empty));

    let uids = |entries: &[ldap3::SearchEntry]| -> Vec<String> {
        entries.iter().map(|e| e.attrs["uid"][0].clone()).collect()
    };
    for (filter, expect) in [
        ("(uid=b*)", vec!["bob"]),
        (
            "(&(objectClass=inetOrgPerson)(uid=*a*))",
            vec!["admin", "carol", "dave", "rita"],
        ),
        ("(paasd-managed=*)", vec!["carol"]),
        // LLDAP tries the value and its lower-case form.
        ("(paasd-managed=YES)", vec!["carol"]),
        ("(paasd-managed=no)", vec![]),
        ("(|(uid=Bob)(uid=carol))", vec!["bob", "carol"]),
        ("(!(uid=bob))", vec!["admin", "carol", "dave", "rita"]),
        (
            &format!("(memberOf=cn=devs,{GROUPS})"),
            vec!["bob", "carol"],
        ),
        ("(memberOf=ops)", vec!["carol"]),
        ("(mail=BOB@example.COM)", vec!["bob"]),
        ("(cn=Bob Builder)", vec!["bob"]),
        ("(cn=bob builder)", vec![]),
        ("(cn=*build*)", vec!["bob"]),
        (
            "(mail=*@EXAMPLE.com)",
            vec!["admin", "bob", "carol", "dave", "rita"],
        ),
        ("(modifyTimestamp=*b*)", vec![]),
        ("(objectClass=groupOfNames)", vec![]),
        ("(mail=*)", vec!["admin", "bob", "carol", "dave", "rita"]),
        // An attribute LLDAP does not know matches nothing, silently.
        ("(shoeSize=42)", vec![]),
        ("(|(shoeSize=42)(uid=dave))", vec!["dave"]),
        (&format!("(entryDN=uid=rita,{PEOPLE})"), vec!["rita"]),
    ] {
        let (rc, msg, entries, _) =
            ldap_search(&mut ldap, PEOPLE, OneLevel, filter, &["uid"]).await;
        assert_eq!((rc, msg.as_str()), (0, ""), "{filter}");
        assert_eq!(uids(&entries), expect, "{filter}");
    }

    // Attribute names are case-insensitive and answered in the spelling asked for.
    let (_, _, e, _) = ldap_search(&mut ldap, PEOPLE, Subtree, "(uid=bob)", &["MAIL", "UID"]).await;
    assert_eq!(e[0].attrs["MAIL"], ["Bob@Example.com"]);
    assert_eq!(e[0].attrs.len(), 2);
    // RFC 4511: `1.1` asks for no attribute; none asks for all (LLDAP's default set, in its
    // own spelling, plus the custom attributes; not memberOf).
    let (_, _, e, _) = ldap_search(&mut ldap, PEOPLE, Subtree, "(uid=carol)", &["1.1"]).await;
    assert!(e[0].attrs.is_empty() && e[0].bin_attrs.is_empty());
    let (_, _, e, _) = ldap_search(&mut ldap, PEOPLE, Subtree, "(uid=carol)", &[]).await;
    let mut names: Vec<&str> = e[0].attrs.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "createtimestamp",
            "entryuuid",
            "mail",
            "objectclass",
            "paasd-managed",
            "uid"
        ]
    );
    let (_, _, e, _) = ldap_search(
        &mut ldap,
        PEOPLE,
        Subtree,
        "(uid=carol)",
        &["*", "memberOf"],
    )
    .await;
    assert!(e[0].attrs.contains_key("memberOf") && e[0].attrs.contains_key("uid"));

    // Bases: a user DN, the organizational unit itself, outside the tree.
    let (rc, _, e, _) = ldap_search(
        &mut ldap,
        &d.user_dn("bob"),
        Base,
        "(objectClass=*)",
        &["uid"],
    )
    .await;
    assert_eq!((rc, dns(&e)), (0, vec![format!("uid=bob,{PEOPLE}")]));
    let (rc, _, e, _) = ldap_search(&mut ldap, PEOPLE, Base, "(uid=nobody)", &["uid"]).await;
    assert_eq!((rc, dns(&e)), (0, vec![PEOPLE.to_owned()]));
    assert_eq!(e[0].attrs["objectClass"], ["top", "organizationalUnit"]);
    let (rc, ..) = ldap_search(&mut ldap, &d.user_dn("ghost"), Base, "(objectClass=*)", &[]).await;
    assert_eq!(rc, 32, "noSuchObject for an empty base-scope search");
    let (rc, _, e, _) = ldap_search(
        &mut ldap,
        "dc=other,dc=org",
        Subtree,
        "(objectClass=*)",
        &[],
    )
    .await;
    assert_eq!((rc, e.len()), (0, 0));

    // What LLDAP refuses: unwillingToPerform (53).
    for filter in [
        "(uid>=a)",
        "(uid~=bob)",
        "(memberOf=*devs*)",
        "(paasd-managed=y*)",
        "(createTimestamp=2*)",
    ] {
        let (rc, msg, e, _) = ldap_search(&mut ldap, PEOPLE, Subtree, filter, &["uid"]).await;
        assert_eq!((rc, e.len()), (53, 0), "{filter}: {msg}");
    }
    let (_, msg, ..) = ldap_search(&mut ldap, PEOPLE, Subtree, "(uid>=a)", &["uid"]).await;
    assert_eq!(
        msg,
        r#"Unsupported user filter: GreaterOrEqual("uid", "a")"#
    );

    // The root DSE needs no bind.
    let mut anon = ldap_conn(&d).await;
    let (rc, _, e, _) = ldap_search(&mut anon, "", Base, "(objectClass=*)", &["vendorName"]).await;
    assert_eq!(
        (rc, e[0].attrs["vendorName"].clone()),
        (0, vec!["LLDAP".to_owned()])
    );
    let (rc, msg, ..) = ldap_search(&mut anon, PEOPLE, Subtree, "(uid=*)", &["uid"]).await;
    assert_eq!((rc, msg.as_str()), (50, "No user currently bound"));
    assert_eq!(d.stats().ldap_ops("search_failed"), 8);
}

#[tokio::test]
async fn ldap_search_groups_and_both() {
    use ldap3::Scope::Subtree;
    let d = directory().await;
    let mut ldap = bound(&d, "admin", ADMIN_PW).await;
    let (rc, _, groups, _) = ldap_search(
        &mut ldap,
        GROUPS,
        Subtree,
        "(objectClass=groupOfUniqueNames)",
        &["cn", "member", "uniqueMember", "objectClass"],
    )
    .await;
    assert_eq!(rc, 0);
    // Sorted by display name.
    assert_eq!(
        dns(&groups),
        [
            "devs",
            "lldap_admin",
            "lldap_password_manager",
            "lldap_strict_readonly",
            "ops"
        ]
        .map(|g| format!("cn={g},{GROUPS}"))
    );
    let devs = &groups[0];
    let members = [format!("uid=bob,{PEOPLE}"), format!("uid=carol,{PEOPLE}")];
    assert_eq!(devs.attrs["member"], members);
    assert_eq!(devs.attrs["uniqueMember"], members);
    assert_eq!(devs.attrs["cn"], ["devs"]);
    assert_eq!(
        devs.attrs["objectClass"],
        ["groupOfUniqueNames", "groupOfNames"]
    );

    let cns = |entries: &[ldap3::SearchEntry]| -> Vec<String> { dns(entries) };
    for (filter, expect) in [
        (format!("(member=uid=carol,{PEOPLE})"), vec!["devs", "ops"]),
        ("(uniqueMember=bob)".to_owned(), vec!["devs"]),
        ("(cn=DEVS)".to_owned(), vec!["devs"]),
        (
            "(cn=lldap_*)".to_owned(),
            vec![
                "lldap_admin",
                "lldap_password_manager",
                "lldap_strict_readonly",
            ],
        ),
        (
            "(&(objectClass=groupOfNames)(!(cn=lldap_*)))".to_owned(),
            vec!["devs", "ops"],
        ),
        ("(objectClass=person)".to_owned(), vec![]),
    ] {
        let (rc, msg, e, _) = ldap_search(&mut ldap, GROUPS, Subtree, &filter, &["cn"]).await;
        assert_eq!((rc, msg.as_str()), (0, ""), "{filter}");
        let expect: Vec<String> = expect.iter().map(|g| format!("cn={g},{GROUPS}")).collect();
        assert_eq!(cns(&e), expect, "{filter}");
    }

    // The base DN searches users and groups (uid means the display name on groups).
    let (rc, _, e, _) =
        ldap_search(&mut ldap, BASE, Subtree, "(|(uid=bob)(cn=ops))", &["cn"]).await;
    assert_eq!(rc, 0);
    assert_eq!(
        dns(&e),
        [format!("uid=bob,{PEOPLE}"), format!("cn=ops,{GROUPS}")]
    );
    let (rc, _, e, _) = ldap_search(&mut ldap, BASE, Subtree, "(objectClass=*)", &["1.1"]).await;
    assert_eq!((rc, e.len()), (0, 5 + 5));
}

#[tokio::test]
async fn ldap_search_permissions_like_lldap() {
    use ldap3::Scope::Subtree;
    let d = directory().await;
    // A regular user sees itself, and its groups with itself as the only member.
    let mut bob = bound(&d, "bob", "bobpw").await;
    let (rc, _, e, _) = ldap_search(&mut bob, PEOPLE, Subtree, "(objectClass=*)", &["uid"]).await;
    assert_eq!((rc, dns(&e)), (0, vec![format!("uid=bob,{PEOPLE}")]));
    let (rc, _, e, _) = ldap_search(&mut bob, GROUPS, Subtree, "(cn=*)", &["member"]).await;
    assert_eq!((rc, dns(&e)), (0, vec![format!("cn=devs,{GROUPS}")]));
    assert_eq!(e[0].attrs["member"], [format!("uid=bob,{PEOPLE}")]);
    // The strict read-only group reads everything.
    let mut rita = bound(&d, "rita", "ritapw").await;
    let (_, _, e, _) = ldap_search(&mut rita, PEOPLE, Subtree, "(objectClass=*)", &["uid"]).await;
    assert_eq!(e.len(), 5);
    let (_, _, e, _) = ldap_search(&mut rita, GROUPS, Subtree, "(cn=devs)", &["member"]).await;
    assert_eq!(e[0].attrs["member"].len(), 2);
}

fn any_user_id(n: usize) -> Value {
    let eqs: Vec<Value> = (0..n)
        .map(|i| json!({"eq": {"field": "user_id", "value": format!("seed{i:05}")}}))
        .collect();
    json!({ "any": eqs })
}

const USERS_BY_FILTER: &str = "query Users($f: RequestFilter) { users(filters: $f) { id } }";

#[tokio::test]
async fn deep_filters_fail_like_sqlite() {
    let d = start().await;
    d.seed_users(1000).unwrap();
    let t = admin_token(&d).await;
    let v = gql(&d, &t, USERS_BY_FILTER, json!({"f": any_user_id(100)})).await;
    assert_eq!(v["data"]["users"].as_array().unwrap().len(), 100);
    // The largest `any` SQLite accepts in LLDAP's attribute query.
    let v = gql(&d, &t, USERS_BY_FILTER, json!({"f": any_user_id(497)})).await;
    assert_eq!(v["data"]["users"].as_array().unwrap().len(), 497);
    for n in [498, 1000] {
        let (status, v) = gql_raw(
            &d,
            &t,
            json!({"query": USERS_BY_FILTER, "variables": {"f": any_user_id(n)}}),
        )
        .await;
        // A field error: HTTP 200, `data: null` (users is non-null), the database error.
        assert_eq!(status, StatusCode::OK, "{n}");
        assert!(v["data"].is_null(), "{n} equalities were not refused");
        assert_eq!(
            error_message(&v),
            "Database error: `Query Error: error returned from database: (code: 1) Expression tree is too large (maximum depth 1000)`"
        );
        assert_eq!(v["errors"][0]["path"], json!(["users"]));
    }

    // The same over LDAP: resultCode other (80).
    let mut ldap = bound(&d, "admin", ADMIN_PW).await;
    let or = |n: usize| {
        let terms: String = (0..n).map(|i| format!("(uid=seed{i:05})")).collect();
        format!("(|{terms})")
    };
    let (rc, _, e, _) =
        ldap_search(&mut ldap, PEOPLE, ldap3::Scope::Subtree, &or(100), &["uid"]).await;
    assert_eq!((rc, e.len()), (0, 100));
    let (rc, msg, e, _) = ldap_search(
        &mut ldap,
        PEOPLE,
        ldap3::Scope::Subtree,
        &or(1000),
        &["uid"],
    )
    .await;
    assert_eq!((rc, e.len()), (80, 0));
    assert_eq!(
        msg,
        format!("Error while searching user \"{PEOPLE}\": Database error: `Query Error: error returned from database: (code: 1) Expression tree is too large (maximum depth 1000)`")
    );
    d.assert_no_violations();
}

#[tokio::test]
async fn user_list_cost_is_counted() {
    let d = directory().await;
    let t = admin_token(&d).await;
    d.reset_stats();
    // One list of 5 users (admin, bob, carol, dave, rita).
    gql(&d, &t, "{ users { id } }", Value::Null).await;
    // One list per group: devs 2, lldap_admin 1, lldap_password_manager 0, lldap_strict_readonly 1, ops 1.
    gql(&d, &t, "{ groups { id users { id } } }", Value::Null).await;
    gql(
        &d,
        &t,
        "{ group(groupId: 1) { users { id } } }",
        Value::Null,
    )
    .await;
    // A filtered list of 2.
    let f = json!({"any": [{"eq": {"field": "id", "value": "bob"}}, {"eq": {"field": "id", "value": "dave"}}]});
    gql(&d, &t, USERS_BY_FILTER, json!({"f": f})).await;
    // LDAP: one list per search that lists users (2 found, 0 found, 1 found from the base DN),
    // none for a search of groups.
    let mut ldap = bound(&d, "admin", ADMIN_PW).await;
    ldap_search(
        &mut ldap,
        PEOPLE,
        ldap3::Scope::Subtree,
        "(memberOf=devs)",
        &["uid"],
    )
    .await;
    ldap_search(
        &mut ldap,
        PEOPLE,
        ldap3::Scope::Subtree,
        "(uid=x*)",
        &["uid"],
    )
    .await;
    ldap_search(
        &mut ldap,
        GROUPS,
        ldap3::Scope::Subtree,
        "(cn=*)",
        &["member"],
    )
    .await;
    ldap_search(
        &mut ldap,
        BASE,
        ldap3::Scope::Subtree,
        "(|(uid=carol)(cn=ops))",
        &["cn"],
    )
    .await;
    let rows = [5u64, 2, 1, 0, 1, 1, 1, 2, 2, 0, 1];
    let expect = paas_doubles::lldap::UserListCost {
        queries: rows.len() as u64,
        rows: rows.iter().sum(),
        rows_squared: rows.iter().map(|r| r * r).sum(),
        max_rows: 5,
    };
    assert_eq!(d.stats().user_lists, expect);
    let stats: Value = client()
        .get(format!("{}/__double/stats", d.http_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["userLists"],
        json!({"queries": 11, "rows": 16, "rowsSquared": 42, "maxRows": 5})
    );
    d.reset_stats();
    assert_eq!(
        d.stats().user_lists,
        paas_doubles::lldap::UserListCost::default()
    );
}
