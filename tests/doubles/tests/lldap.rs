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
