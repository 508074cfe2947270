//! Property tests of the spec parser: random mutations of a valid spec (examples/spec.json)
//! never panic the parser, and every problem it reports names the JSON path it is about (an
//! empty path is allowed only for problems of the document itself: not JSON, not an object, a
//! missing top-level key).

use paasd::core::spec::{parse_spec, SpecError};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Value};

const EXAMPLE: &str = include_str!("../examples/spec.json");

/// Every JSON pointer in `v` (the root is "").
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let k = k.replace('~', "~0").replace('/', "~1");
                pointers(x, format!("{at}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(-1)),
        Just(json!(u64::MAX)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "",
            "lldap_admin",
            "/abs/path",
            "/nix/store/x",
            "rel/path",
            "ALICE",
            "a@b.c",
            "12h",
            "1x",
            "http://",
            "ldap://h",
            "perUser",
            "universal",
            "generated",
            "none",
            "initial",
            "delete",
            "keep",
            "disable",
            "10 GB",
            "😀",
            "a\u{0}b",
            "paasd-managed",
            "gitlab",
        ])
        .prop_map(|s| Value::String(s.to_string())),
        Just(json!([])),
        Just(json!({})),
        Just(json!(["family", "family"])),
        Just(json!({ "email": "x@example.com" })),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, Value),
    Remove(usize),
    Insert(usize, String, Value),
    Rename(usize, String),
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z_.-]{0,8}",
        prop::sample::select(vec![
            "version",
            "lldap",
            "users",
            "groups",
            "removal",
            "email",
            "groups",
            "admin",
            "passwordFile",
            "attributes",
            "nextcloud",
            "gitlab",
            "mailcow",
            "jellyfin",
            "vaultwarden",
            "services",
            "displayName",
            "paasd-managed",
            "a b",
            "a\"b",
            "",
        ])
        .prop_map(str::to_string),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), leaf()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), key(), leaf()).prop_map(|(i, k, v)| Mutation::Insert(i, k, v)),
        (any::<usize>(), key()).prop_map(|(i, k)| Mutation::Rename(i, k)),
    ]
}

fn parent_and_last(ptr: &str) -> Option<(&str, &str)> {
    ptr.rfind('/').map(|i| (&ptr[..i], &ptr[i + 1..]))
}

fn unescape(k: &str) -> String {
    k.replace("~1", "/").replace("~0", "~")
}

fn apply(doc: &mut Value, m: &Mutation) {
    let mut ps = Vec::new();
    pointers(doc, String::new(), &mut ps);
    let pick = |i: &usize| ps[*i % ps.len()].clone();
    match m {
        Mutation::Replace(i, v) => {
            if let Some(x) = doc.pointer_mut(&pick(i)) {
                *x = v.clone();
            }
        }
        Mutation::Remove(i) => {
            let p = pick(i);
            if let Some((parent, last)) = parent_and_last(&p) {
                match doc.pointer_mut(parent) {
                    Some(Value::Object(m)) => {
                        m.remove(&unescape(last));
                    }
                    Some(Value::Array(a)) => {
                        if let Ok(n) = last.parse::<usize>() {
                            if n < a.len() {
                                a.remove(n);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Mutation::Insert(i, k, v) => match doc.pointer_mut(&pick(i)) {
            Some(Value::Object(m)) => {
                m.insert(k.clone(), v.clone());
            }
            Some(Value::Array(a)) => a.push(v.clone()),
            _ => {}
        },
        Mutation::Rename(i, k) => {
            let p = pick(i);
            if let Some((parent, last)) = parent_and_last(&p) {
                if let Some(Value::Object(m)) = doc.pointer_mut(parent) {
                    if let Some(v) = m.remove(&unescape(last)) {
                        m.insert(k.clone(), v);
                    }
                }
            }
        }
    }
}

/// Problems about the document as a whole may have an empty path.
fn top_level(message: &str) -> bool {
    message.starts_with("not valid JSON")
        || message.starts_with("missing required key")
        || message.starts_with("expected an object")
}

fn check_problems(text: &str) -> Result<(), TestCaseError> {
    match parse_spec(text) {
        Ok(spec) => {
            // A spec that parses is internally consistent: every user's groups are declared.
            for (id, u) in &spec.users {
                for g in &u.groups {
                    prop_assert!(spec.groups.contains_key(g), "users.{}: {}", id, g);
                }
            }
        }
        Err(SpecError::Invalid(problems)) => {
            prop_assert!(!problems.is_empty(), "an invalid spec without problems");
            for p in &problems {
                prop_assert!(
                    !p.path.is_empty() || top_level(&p.message),
                    "problem without a path: {:?}\nin:\n{}",
                    p,
                    text
                );
                prop_assert!(!p.message.is_empty(), "empty message at {}", p.path);
            }
        }
        Err(e) => prop_assert!(false, "parse_spec returned a read error: {}", e),
    }
    Ok(())
}

proptest! {
    #![proptest_config(Config { cases: 1500, failure_persistence: None, ..Config::default() })]

    #[test]
    fn json_mutations_never_panic_and_problems_have_paths(
        muts in prop::collection::vec(mutation(), 1..6)
    ) {
        let mut doc: Value = serde_json::from_str(EXAMPLE).expect("the example is JSON");
        for m in &muts {
            apply(&mut doc, m);
        }
        check_problems(&doc.to_string())?;
    }

    #[test]
    fn text_mutations_never_panic(
        cut in any::<usize>(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4)
    ) {
        let mut bytes = EXAMPLE.as_bytes().to_vec();
        for (i, b) in &flips {
            let n = bytes.len();
            bytes[*i % n] = *b;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        let text = String::from_utf8_lossy(&bytes);
        check_problems(&text)?;
    }
}

#[test]
fn the_example_is_valid_and_a_mutation_is_caught_with_its_path() {
    parse_spec(EXAMPLE).expect("examples/spec.json is valid");
    let mut doc: Value = serde_json::from_str(EXAMPLE).expect("json");
    let users = doc["users"].as_object_mut().expect("users");
    let first = users.keys().next().expect("a user").clone();
    users[&first]["email"] = json!(42);
    let Err(SpecError::Invalid(p)) = parse_spec(&doc.to_string()) else {
        panic!("a number e-mail must be refused");
    };
    assert!(
        p.iter().any(|p| p.path == format!("users.{first}.email")),
        "{p:?}"
    );
}
