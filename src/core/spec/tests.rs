use super::*;
use serde_json::{json, Value};

fn base() -> Value {
    json!({
        "version": 1,
        "lldap": {
            "url": "http://127.0.0.1:17170",
            "ldapUrl": "ldap://127.0.0.1:3890",
            "baseDn": "dc=example,dc=com",
            "adminPasswordFile": "/run/credentials/paasd.service/lldap-admin-password"
        },
        "groups": { "family": {} },
        "users": {
            "alice": { "email": "alice@example.com", "groups": ["family"] }
        }
    })
}

fn problems(v: &Value) -> Vec<String> {
    match parse_spec(&v.to_string()) {
        Ok(_) => Vec::new(),
        Err(SpecError::Invalid(p)) => p.iter().map(|p| p.to_string()).collect(),
        Err(e) => vec![e.to_string()],
    }
}

fn assert_problem(v: &Value, expected: &str) {
    let p = problems(v);
    assert!(
        p.iter().any(|m| m.contains(expected)),
        "expected a problem containing {expected:?}, got {p:#?}"
    );
}

#[test]
fn minimal_spec_parses_with_defaults() {
    let s = parse_spec(&base().to_string()).expect("valid");
    assert_eq!(s.version, 1);
    assert_eq!(s.removal, Removal::Disable);
    assert_eq!(s.removal_guard.max_percent, 25);
    assert_eq!(s.lldap.admin_username, "admin");
    assert_eq!(s.lldap.disabled_group, "paas_disabled");
    assert_eq!(s.lldap.timeout_seconds, 30);
    let a = &s.users["alice"];
    assert!(a.enable);
    assert!(!a.admin);
    assert_eq!(a.password_mode, PasswordMode::Enforce);
    assert_eq!(
        a.display_name, None,
        "omitted optional fields stay unmanaged"
    );
    assert_eq!(s.groups["family"].display_name, "family");
}

#[test]
fn example_spec_is_valid() {
    let text = include_str!("../../../examples/spec.json");
    let s = parse_spec(text).expect("examples/spec.json must stay valid");
    assert!(s.users.len() >= 3);
    assert!(!s.users["carol"].enable);
    assert_eq!(s.users["bob"].password_mode, PasswordMode::Initial);
}

#[test]
fn every_problem_is_reported_at_once_with_its_path() {
    let mut v = base();
    v["users"]["alice"]["email"] = json!("alice-at-example.com");
    v["users"]["alice"]["groups"] = json!(["family", "admins"]);
    v["users"]["alice"]["emial"] = json!("x");
    v["lldap"]["url"] = json!("ftp://host");
    let p = problems(&v);
    assert_eq!(p.len(), 4, "{p:#?}");
    assert!(
        p.contains(
            &"users.alice.email: \"alice-at-example.com\" is not an e-mail address".to_string()
        ),
        "{p:#?}"
    );
    assert!(
        p.contains(
            &"users.alice.groups[1]: group \"admins\" is not declared under groups".to_string()
        ),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|m| m.starts_with("users.alice.emial: unknown key")),
        "{p:#?}"
    );
    assert!(p.iter().any(|m| m.starts_with("lldap.url: ")), "{p:#?}");
}

#[test]
fn not_json_and_wrong_version() {
    let e = parse_spec("{ nope").expect_err("invalid JSON");
    assert!(e.to_string().contains("not valid JSON"), "{e}");
    let mut v = base();
    v["version"] = json!(2);
    assert_problem(&v, "version: unsupported version 2");
    let mut v = base();
    v.as_object_mut().map(|o| o.remove("version"));
    assert_problem(&v, "missing required key \"version\"");
}

#[test]
fn unknown_keys_everywhere() {
    for path in [
        vec!["bogus"],
        vec!["lldap", "bogus"],
        vec!["groups", "family", "bogus"],
        vec!["users", "alice", "bogus"],
    ] {
        let mut v = base();
        let mut cur = &mut v;
        for k in &path[..path.len() - 1] {
            cur = &mut cur[*k];
        }
        cur[path[path.len() - 1]] = json!(1);
        assert_problem(&v, &format!("{}: unknown key", path.join(".")));
    }
    let mut v = base();
    v["users"]["alice"]["nextcloud"] = json!({ "quotaa": "1 GB" });
    assert_problem(&v, "users.alice.nextcloud.quotaa: unknown key");
}

#[test]
fn wrong_types_are_named() {
    let mut v = base();
    v["users"]["alice"]["admin"] = json!("yes");
    v["users"]["alice"]["groups"] = json!("family");
    v["lldap"]["timeoutSeconds"] = json!(-1);
    v["groups"]["family"] = json!([]);
    let p = problems(&v);
    assert!(
        p.iter()
            .any(|m| m == "users.alice.admin: expected true or false, found a string"),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|m| m == "users.alice.groups: expected a list of strings, found a string"),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|m| m.starts_with("lldap.timeoutSeconds: expected a whole number")),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|m| m == "groups.family: expected an object, found a list"),
        "{p:#?}"
    );
}

#[test]
fn ids_names_and_emails_are_checked() {
    let mut v = base();
    v["users"]["Alice"] = json!({ "email": "a2@example.com" });
    assert_problem(&v, "users.Alice: user ids are");
    let mut v = base();
    v["groups"]["lldap_admin"] = json!({});
    assert_problem(&v, "groups.lldap_admin: group names are");
    let mut v = base();
    v["groups"]["ops"] = json!({ "displayName": "lldap_ops" });
    assert_problem(&v, "groups.ops.displayName: names starting with \"lldap_\"");
    for bad in [
        "",
        "a@b",
        "a b@example.com",
        "@example.com",
        "a@@example.com",
    ] {
        let mut v = base();
        v["users"]["alice"]["email"] = json!(bad);
        assert_problem(&v, "users.alice.email: ");
    }
}

#[test]
fn duplicates_are_errors() {
    let mut v = base();
    v["users"]["bob"] = json!({ "email": "ALICE@example.com" });
    assert_problem(
        &v,
        "users.bob.email: e-mail \"ALICE@example.com\" is also used by users.alice",
    );
    let mut v = base();
    v["users"]["alice"]["groups"] = json!(["family", "family"]);
    assert_problem(
        &v,
        "users.alice.groups[1]: group \"family\" is listed twice",
    );
    let mut v = base();
    v["groups"]["fam"] = json!({ "displayName": "Family" });
    assert_problem(
        &v,
        "groups.family.displayName: group name \"family\" is also used by groups.fam",
    );
}

#[test]
fn repeated_keys_in_the_document_are_errors() {
    // JSON objects built by hand can repeat a key; serde would silently keep the last one.
    let text = r#"{"version": 1, "version": 1,
        "lldap": {"url": "http://127.0.0.1:17170", "ldapUrl": "ldap://127.0.0.1:3890",
                  "baseDn": "dc=example,dc=com",
                  "adminPasswordFile": "/run/credentials/paasd.service/lldap-admin-password"},
        "users": {"alice": {"email": "a@example.com"}, "bob": {"email": "b@example.com"},
                  "alice": {"email": "a2@example.com"}}}"#;
    let Err(SpecError::Invalid(p)) = parse_spec(text) else {
        panic!("repeated keys must be rejected");
    };
    let p: Vec<String> = p.iter().map(|p| p.to_string()).collect();
    assert!(
        p.contains(&"version: this key appears more than once".to_string()),
        "{p:#?}"
    );
    assert!(
        p.contains(&"users.alice: this user id appears more than once in \"users\"".to_string()),
        "{p:#?}"
    );
    assert_eq!(p.len(), 2, "{p:#?}");
}

#[test]
fn a_document_that_is_not_an_object_or_users_that_is_not_one() {
    for (text, found) in [("[]", "a list"), ("7", "a number"), ("null", "null")] {
        let Err(SpecError::Invalid(p)) = parse_spec(text) else {
            panic!("{text} is not a spec");
        };
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].path, "");
        assert_eq!(p[0].message, format!("expected an object, found {found}"));
    }
    let mut v = base();
    v["users"] = json!(["alice"]);
    assert_eq!(
        problems(&v),
        ["users: expected an object, found a list".to_string()]
    );
}

#[test]
fn secret_paths_must_be_absolute_and_outside_the_store() {
    let mut v = base();
    v["users"]["alice"]["passwordFile"] = json!("secrets/alice");
    assert_problem(
        &v,
        "users.alice.passwordFile: \"secrets/alice\" is not an absolute path",
    );
    let mut v = base();
    v["lldap"]["adminPasswordFile"] = json!("/nix/store/abc-admin");
    assert_problem(
        &v,
        "lldap.adminPasswordFile: \"/nix/store/abc-admin\" is in the Nix store",
    );
    let mut v = base();
    v["lldap"]
        .as_object_mut()
        .map(|o| o.remove("adminPasswordFile"));
    assert_problem(&v, "lldap: missing required key \"adminPasswordFile\"");
}

#[test]
fn enums_list_their_choices() {
    let mut v = base();
    v["removal"] = json!("purge");
    assert_problem(
        &v,
        "removal: \"purge\" is not one of \"disable\", \"delete\", \"keep\"",
    );
    let mut v = base();
    v["users"]["alice"]["passwordMode"] = json!("always");
    assert_problem(&v, "users.alice.passwordMode: \"always\" is not one of");
    let mut v = base();
    v["removalGracePeriod"] = json!("soon");
    assert_problem(&v, "removalGracePeriod: \"soon\" is not a duration");
    let mut v = base();
    v["removalGuard"] = json!({ "maxPercent": 101 });
    assert_problem(&v, "removalGuard.maxPercent: 101 is out of range");
}

#[test]
fn admin_account_and_disabled_group_are_reserved() {
    let mut v = base();
    v["users"]["admin"] = json!({ "email": "admin@example.com" });
    assert_problem(&v, "users.admin: this is lldap.adminUsername");
    let mut v = base();
    v["groups"]["paas_disabled"] = json!({});
    assert_problem(
        &v,
        "lldap.disabledGroup: \"paas_disabled\" is also declared under groups",
    );
}

#[test]
fn attributes_are_checked() {
    let mut v = base();
    v["users"]["alice"]["attributes"] = json!({ "shell": "/bin/sh", "keys": ["a", "b"] });
    let s = parse_spec(&v.to_string()).expect("valid");
    assert_eq!(
        s.users["alice"].attributes["shell"],
        vec!["/bin/sh".to_string()]
    );
    assert_eq!(s.users["alice"].attributes["keys"].len(), 2);
    let mut v = base();
    v["users"]["alice"]["attributes"] = json!({ "paasd-managed": "x" });
    assert_problem(
        &v,
        "users.alice.attributes.paasd-managed: \"paasd-managed\" is reserved",
    );
    let mut v = base();
    v["users"]["alice"]["attributes"] = json!({ "bad name": "x" });
    assert_problem(&v, "attribute names are");
    let mut v = base();
    v["groups"]["family"]["attributes"] = json!({ "n": 3 });
    assert_problem(
        &v,
        "groups.family.attributes.n: expected a list of strings, found a number",
    );
}

#[test]
fn services_must_be_configured_and_settings_warn_until_implemented() {
    let mut v = base();
    v["users"]["alice"]["services"] = json!(["nextcloud", "bogus"]);
    let p = problems(&v);
    assert!(
        p.iter()
            .any(|m| m
                .starts_with("users.alice.services[0]: service \"nextcloud\" is not configured")),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|m| m.starts_with("users.alice.services[1]: unknown service \"bogus\"")),
        "{p:#?}"
    );

    let mut v = base();
    v["nextcloud"] = json!({ "url": "https://cloud.example.com", "adminUser": "root", "adminPasswordFile": "/run/credentials/paasd.service/nextcloud-admin-password" });
    v["users"]["alice"]["services"] = json!(["nextcloud"]);
    v["users"]["alice"]["nextcloud"] = json!({ "quota": "10 GB", "admin": true });
    let s = parse_spec(&v.to_string()).expect("valid");
    assert_eq!(
        s.services.configured().collect::<Vec<_>>(),
        vec![ServiceKind::Nextcloud]
    );
    assert_eq!(
        s.users["alice"].settings().nextcloud.quota.as_deref(),
        Some("10 GB")
    );
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    // Settings for a service that is not configured are accepted with a warning.
    let mut v = base();
    v["users"]["alice"]["jellyfin"] = json!({ "admin": true });
    let s = parse_spec(&v.to_string()).expect("valid");
    assert!(
        s.warnings
            .iter()
            .any(|w| w.path == "users.alice.jellyfin" && w.message.contains("not configured")),
        "{:?}",
        s.warnings
    );

    let mut v = base();
    v["mailcow"] = json!({ "url": "https://mail.example.com", "apiKeyFile": "/k" });
    v["gitlab"] = json!({ "url": "https://git.example.com", "tokenFile": "relative" });
    let p = problems(&v);
    assert!(
        p.iter()
            .any(|m| m == "mailcow: missing required key \"domain\""),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|m| m.starts_with("gitlab.tokenFile: \"relative\" is not an absolute path")),
        "{p:#?}"
    );

    let mut v = base();
    v["users"]["alice"]["nextcloud"] = json!({ "quota": "lots" });
    assert_problem(&v, "users.alice.nextcloud.quota: \"lots\" is not a quota");
}

#[test]
fn universal_strategy_needs_its_file() {
    let mut v = base();
    v["passwords"] = json!({ "strategy": "universal" });
    assert_problem(
        &v,
        "passwords.universalPasswordFile: the \"universal\" password strategy is used",
    );
    v["passwords"]["universalPasswordFile"] =
        json!("/run/credentials/paasd.service/universal-password");
    assert!(problems(&v).is_empty());
}

#[test]
fn odd_keys_are_quoted_in_paths() {
    let mut v = base();
    v["users"]["a.b"] = json!({ "email": "bad" });
    assert_problem(&v, "users[\"a.b\"].email: \"bad\" is not an e-mail address");
}

#[test]
fn durations_parse() {
    assert_eq!(parse_duration("0"), Some(0));
    assert_eq!(parse_duration("90s"), Some(90));
    assert_eq!(parse_duration("15m"), Some(900));
    assert_eq!(parse_duration("12h"), Some(43_200));
    assert_eq!(parse_duration("30d"), Some(2_592_000));
    assert_eq!(parse_duration("1y"), None);
    assert_eq!(parse_duration("h"), None);
}
