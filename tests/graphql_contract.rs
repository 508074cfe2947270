//! paasd's GraphQL against LLDAP's published schema (the shared contracts'
//! `lldap/schema.graphql`, found as the test double finds it: `$PAAS_CONTRACTS`, else
//! `../shared/contracts` beside the repository).
//!
//! The build generates the operations' Rust types from paasd's own schema subset
//! (`src/targets/lldap/schema.graphql`); this test keeps that subset honest:
//!
//! - every document in `src/targets/lldap/graphql/` validates against LLDAP's schema (and
//!   against the subset), and holds one named operation;
//! - every type, field, argument, input field and enum value of the subset exists in LLDAP's
//!   schema with the same kind and a compatible type, and every argument and input field LLDAP
//!   requires is in the subset.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use apollo_compiler::ast::{OperationType, Type};
use apollo_compiler::schema::{ExtendedType, InputValueDefinition};
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Node, Schema};

fn lldap_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join("targets")
        .join("lldap")
}

fn load_schema(path: &Path) -> Valid<Schema> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (LLDAP's schema is in the shared contracts: set PAAS_CONTRACTS to \
             that directory)",
            path.display()
        )
    });
    Schema::parse_and_validate(text, path)
        .unwrap_or_else(|e| panic!("{} is not a valid schema:\n{}", path.display(), e.errors))
}

/// LLDAP's published schema.
fn vendor() -> Valid<Schema> {
    load_schema(
        &paas_doubles::lldap::default_contracts_dir()
            .join("lldap")
            .join("schema.graphql"),
    )
}

/// paasd's subset, as the build reads it.
fn subset() -> Valid<Schema> {
    load_schema(&lldap_dir().join("schema.graphql"))
}

/// paasd's documents: (file, text).
fn documents() -> Vec<(PathBuf, String)> {
    let dir = lldap_dir().join("graphql");
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut docs: Vec<(PathBuf, String)> = entries
        .map(|e| e.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())))
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "graphql"))
        .map(|p| {
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            (p, text)
        })
        .collect();
    docs.sort();
    docs
}

/// The names of the operations paasd sends (the test double and the tests count them by name).
const OPERATIONS: [&str; 12] = [
    "PaasdAddGroupAttribute",
    "PaasdAddUserAttribute",
    "PaasdAddUserToGroup",
    "PaasdCreateGroup",
    "PaasdCreateUser",
    "PaasdDeleteGroup",
    "PaasdDeleteUser",
    "PaasdGetUser",
    "PaasdObserve",
    "PaasdRemoveUserFromGroup",
    "PaasdUpdateGroup",
    "PaasdUpdateUser",
];

#[test]
fn every_document_validates_against_lldaps_schema() {
    let (vendor, subset) = (vendor(), subset());
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    let docs = documents();
    for (path, text) in &docs {
        for (what, schema) in [("LLDAP's schema", &vendor), ("paasd's subset", &subset)] {
            match ExecutableDocument::parse_and_validate(schema, text.as_str(), path) {
                Ok(doc) => {
                    let ops: Vec<String> = doc
                        .operations
                        .iter()
                        .map(|op| op.name.as_ref().map_or(String::new(), |n| n.to_string()))
                        .collect();
                    match ops.as_slice() {
                        [name] if !name.is_empty() => {
                            names.insert(name.clone());
                        }
                        _ => problems.push(format!(
                            "{}: one named operation expected, found {ops:?}",
                            path.display()
                        )),
                    }
                }
                Err(e) => problems.push(format!(
                    "{} does not validate against {what}:\n{}",
                    path.display(),
                    e.errors
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let expected: BTreeSet<String> = OPERATIONS.iter().map(|s| s.to_string()).collect();
    assert_eq!(names, expected, "the operations in {} files", docs.len());
}

#[test]
fn the_subset_describes_lldaps_schema() {
    let problems = subset_problems(&subset(), &vendor());
    assert!(
        problems.is_empty(),
        "src/targets/lldap/schema.graphql does not match LLDAP's schema:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_check_finds_what_lldap_lacks() {
    // The comparison itself: each kind of mismatch is found (a guard against a check that
    // passes whatever it is given).
    let vendor = Schema::parse_and_validate(
        "type Query { user(id: String!, full: Boolean): User! users: [User!]! }
         type User { id: String! name: String kind: Kind! }
         enum Kind { A B }
         input New { id: String! note: String }
         type Mutation { add(new: New!, dry: Boolean!): User }",
        "vendor.graphql",
    )
    .expect("a valid vendor schema");
    let cases = [
        // A field LLDAP lacks.
        (
            "type Query { user(id: String!): User } type User { id: String! nick: String }",
            "User.nick",
        ),
        // A type LLDAP lacks.
        ("type Query { me: Me } type Me { id: String! }", "Me"),
        // Non-null where LLDAP may answer null.
        (
            "type Query { user(id: String!): User } type User { name: String! }",
            "User.name",
        ),
        // Another named type.
        (
            "type Query { user(id: Int!): User } type User { id: String! }",
            "Query.user(id:)",
        ),
        // A list where LLDAP has none, and none where it has one.
        (
            "type Query { user(id: String!): [User] } type User { id: String! }",
            "Query.user",
        ),
        (
            "type Query { users: User } type User { id: String! }",
            "Query.users",
        ),
        // A required argument left out, one LLDAP lacks, one sent nullable that LLDAP requires.
        (
            "type Query { user: User } type User { id: String! }",
            "Query.user(id:)",
        ),
        (
            "type Query { user(id: String!, x: Int): User } type User { id: String! }",
            "Query.user(x:)",
        ),
        (
            "type Query { user(id: String): User } type User { id: String! }",
            "Query.user(id:)",
        ),
        // Input objects: the same rules.
        (
            "type Query { user(id: String!): User } type User { id: String! }
          type Mutation { add(new: New!, dry: Boolean!): User } input New { note: String }",
            "New.id",
        ),
        (
            "type Query { user(id: String!): User } type User { id: String! }
          type Mutation { add(new: New!, dry: Boolean!): User } input New { id: String! x: Int }",
            "New.x",
        ),
        // An enum value LLDAP lacks; a kind that is not LLDAP's.
        (
            "type Query { user(id: String!): User } type User { kind: Kind } enum Kind { A C }",
            "Kind.C",
        ),
        (
            "type Query { user(id: String!): User } type User { kind: Kind } scalar Kind",
            "Kind",
        ),
    ];
    for (sub, expected) in cases {
        let sub = Schema::parse_and_validate(sub, "subset.graphql").expect("a valid subset");
        let problems = subset_problems(&sub, &vendor);
        assert!(
            problems.iter().any(|p| p.starts_with(expected)),
            "{expected}: {problems:?}"
        );
    }
    let fine = Schema::parse_and_validate(
        "type Query { user(id: String!): User users: [User!] }
         type User { id: String! name: String kind: Kind }
         enum Kind { A }
         input New { id: String! note: String! }
         type Mutation { add(new: New!, dry: Boolean!): User }",
        "subset.graphql",
    )
    .expect("a valid subset");
    assert_eq!(subset_problems(&fine, &vendor), Vec::<String>::new());
}

/// Where `sub` says more than, or other than, `vendor`.
fn subset_problems(sub: &Schema, vendor: &Schema) -> Vec<String> {
    let mut problems = Vec::new();
    for op in [
        OperationType::Query,
        OperationType::Mutation,
        OperationType::Subscription,
    ] {
        if let Some(root) = sub.root_operation(op) {
            if vendor.root_operation(op) != Some(root) {
                problems.push(format!(
                    "{root}: the {op} root of LLDAP's schema is {:?}",
                    vendor.root_operation(op).map(|n| n.as_str())
                ));
            }
        }
    }
    for (name, ty) in sub.types.iter().filter(|(_, t)| !t.is_built_in()) {
        let Some(theirs) = vendor.types.get(name) else {
            problems.push(format!("{name}: no such type in LLDAP's schema"));
            continue;
        };
        match (ty, theirs) {
            (ExtendedType::Object(ours), ExtendedType::Object(theirs)) => {
                for (field, def) in &ours.fields {
                    let at = format!("{name}.{field}");
                    let Some(their_def) = theirs.fields.get(field) else {
                        problems.push(format!("{at}: no such field in LLDAP's schema"));
                        continue;
                    };
                    if !output_compatible(&def.ty, &their_def.ty) {
                        problems.push(format!(
                            "{at}: {} here, {} in LLDAP's schema",
                            def.ty, their_def.ty
                        ));
                    }
                    compare_inputs(
                        &format!("{at}("),
                        ":)",
                        &def.arguments,
                        &their_def.arguments,
                        &mut problems,
                    );
                }
            }
            (ExtendedType::InputObject(ours), ExtendedType::InputObject(theirs)) => {
                let ours: Vec<_> = ours.fields.values().map(|f| f.node.clone()).collect();
                let theirs: Vec<_> = theirs.fields.values().map(|f| f.node.clone()).collect();
                compare_inputs(&format!("{name}."), "", &ours, &theirs, &mut problems);
            }
            (ExtendedType::Enum(ours), ExtendedType::Enum(theirs)) => {
                for value in ours.values.keys() {
                    if !theirs.values.contains_key(value) {
                        problems.push(format!("{name}.{value}: no such value in LLDAP's schema"));
                    }
                }
            }
            (ExtendedType::Scalar(_), ExtendedType::Scalar(_)) => {}
            (ExtendedType::Object(_), _)
            | (ExtendedType::InputObject(_), _)
            | (ExtendedType::Enum(_), _)
            | (ExtendedType::Scalar(_), _) => {
                problems.push(format!("{name}: another kind of type in LLDAP's schema"));
            }
            _ => problems.push(format!(
                "{name}: interfaces and unions are not compared (paasd uses none)"
            )),
        }
    }
    problems
}

/// Arguments of a field, or fields of an input object: each of ours exists in theirs with an
/// input-compatible type, and each one they require is ours too.
fn compare_inputs(
    prefix: &str,
    suffix: &str,
    ours: &[Node<InputValueDefinition>],
    theirs: &[Node<InputValueDefinition>],
    problems: &mut Vec<String>,
) {
    for arg in ours {
        let at = format!("{prefix}{}{suffix}", arg.name);
        match theirs.iter().find(|t| t.name == arg.name) {
            None => problems.push(format!("{at}: not in LLDAP's schema")),
            Some(t) if !input_compatible(&arg.ty, &t.ty) => {
                problems.push(format!("{at}: {} here, {} in LLDAP's schema", arg.ty, t.ty))
            }
            Some(_) => {}
        }
    }
    for t in theirs {
        let required = t.ty.is_non_null() && t.default_value.is_none();
        if required && !ours.iter().any(|a| a.name == t.name) {
            problems.push(format!(
                "{prefix}{}{suffix}: required by LLDAP's schema, missing here",
                t.name
            ));
        }
    }
}

/// Every value LLDAP may answer for `theirs` is a value of `ours`: the same named type and list
/// levels; ours may be nullable where theirs is not, never the reverse.
fn output_compatible(ours: &Type, theirs: &Type) -> bool {
    if ours.is_non_null() && !theirs.is_non_null() {
        return false;
    }
    same_shape(ours, theirs, output_compatible)
}

/// Every value paasd sends as `ours` is a value of `theirs`: the same named type and list
/// levels; ours may be non-null where theirs is nullable, never the reverse.
fn input_compatible(ours: &Type, theirs: &Type) -> bool {
    if theirs.is_non_null() && !ours.is_non_null() {
        return false;
    }
    same_shape(ours, theirs, input_compatible)
}

fn same_shape(ours: &Type, theirs: &Type, items: fn(&Type, &Type) -> bool) -> bool {
    match (ours.is_list(), theirs.is_list()) {
        (true, true) => items(ours.item_type(), theirs.item_type()),
        (false, false) => ours.inner_named_type() == theirs.inner_named_type(),
        _ => false,
    }
}
