//! The walker the spec parser is built on: a walk over a `serde_json::Value` that collects every
//! problem, with its JSON path, instead of stopping at the first; an object being read reports
//! the keys nobody asked for as unknown.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::SpecProblem;

#[derive(Default)]
pub(super) struct Cx {
    pub(super) problems: Vec<SpecProblem>,
    pub(super) warnings: Vec<SpecProblem>,
}

impl Cx {
    pub(super) fn err(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(SpecProblem {
            path: path.to_string(),
            message: message.into(),
        });
    }
    pub(super) fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(SpecProblem {
            path: path.to_string(),
            message: message.into(),
        });
    }
}

/// `parent.key`, or `parent["odd key"]` when the key is not a plain identifier.
pub(super) fn join(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{}]", Value::String(key.to_string())),
    }
}

pub(super) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// An object being read: remembers which keys were consumed, reports the others as unknown.
pub(super) struct Obj<'a> {
    path: String,
    pub(super) map: &'a Map<String, Value>,
    known: Vec<&'static str>,
}

impl<'a> Obj<'a> {
    pub(super) fn new(cx: &mut Cx, path: &str, v: &'a Value) -> Option<Obj<'a>> {
        match v {
            Value::Object(map) => Some(Obj {
                path: path.to_string(),
                map,
                known: Vec::new(),
            }),
            other => {
                cx.err(
                    path,
                    format!("expected an object, found {}", type_name(other)),
                );
                None
            }
        }
    }

    pub(super) fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value of an optional key (`null` counts as absent).
    pub(super) fn opt(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// The value of a required key.
    pub(super) fn req(&mut self, cx: &mut Cx, key: &'static str) -> Option<&'a Value> {
        let v = self.opt(key);
        if v.is_none() {
            cx.err(&self.path, format!("missing required key \"{key}\""));
        }
        v
    }

    pub(super) fn finish(self, cx: &mut Cx) {
        for key in self.map.keys() {
            if !self.known.contains(&key.as_str()) {
                cx.err(
                    &self.at(key),
                    format!("unknown key (known keys: {})", self.known.join(", ")),
                );
            }
        }
    }

    pub(super) fn string(&mut self, cx: &mut Cx, key: &'static str) -> Option<String> {
        let v = self.opt(key)?;
        as_string(cx, &self.at(key), v)
    }

    pub(super) fn req_string(&mut self, cx: &mut Cx, key: &'static str) -> Option<String> {
        let v = self.req(cx, key)?;
        as_string(cx, &self.at(key), v)
    }

    pub(super) fn bool(&mut self, cx: &mut Cx, key: &'static str) -> Option<bool> {
        let v = self.opt(key)?;
        match v {
            Value::Bool(b) => Some(*b),
            other => {
                cx.err(
                    &self.at(key),
                    format!("expected true or false, found {}", type_name(other)),
                );
                None
            }
        }
    }

    pub(super) fn uint(
        &mut self,
        cx: &mut Cx,
        key: &'static str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let v = self.opt(key)?;
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                cx.err(
                    &self.at(key),
                    format!("{n} is out of range ({min} to {max})"),
                );
                None
            }
            None => {
                cx.err(
                    &self.at(key),
                    format!("expected a whole number, found {}", type_name(v)),
                );
                None
            }
        }
    }

    pub(super) fn path(
        &mut self,
        cx: &mut Cx,
        key: &'static str,
        required: bool,
    ) -> Option<PathBuf> {
        let v = if required {
            self.req(cx, key)?
        } else {
            self.opt(key)?
        };
        let at = self.at(key);
        let s = as_string(cx, &at, v)?;
        check_secret_path(cx, &at, &s)
    }

    pub(super) fn string_list(&mut self, cx: &mut Cx, key: &'static str) -> Option<Vec<String>> {
        let v = self.opt(key)?;
        let at = self.at(key);
        as_string_list(cx, &at, v)
    }

    pub(super) fn enum_of<T: Copy>(
        &mut self,
        cx: &mut Cx,
        key: &'static str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let v = self.opt(key)?;
        let at = self.at(key);
        let s = as_string(cx, &at, v)?;
        match choices.iter().find(|(name, _)| *name == s) {
            Some((_, t)) => Some(*t),
            None => {
                let names: Vec<String> = choices.iter().map(|(n, _)| format!("\"{n}\"")).collect();
                cx.err(&at, format!("\"{s}\" is not one of {}", names.join(", ")));
                None
            }
        }
    }
}

pub(super) fn as_string(cx: &mut Cx, path: &str, v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        other => {
            cx.err(
                path,
                format!("expected a string, found {}", type_name(other)),
            );
            None
        }
    }
}

pub(super) fn as_string_list(cx: &mut Cx, path: &str, v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                match as_string(cx, &index(path, i), item) {
                    Some(s) => out.push(s),
                    None => ok = false,
                }
            }
            ok.then_some(out)
        }
        other => {
            cx.err(
                path,
                format!("expected a list of strings, found {}", type_name(other)),
            );
            None
        }
    }
}

pub(super) fn check_secret_path(cx: &mut Cx, path: &str, s: &str) -> Option<PathBuf> {
    if !s.starts_with('/') {
        cx.err(path, format!("\"{s}\" is not an absolute path"));
        None
    } else if s.starts_with("/nix/store/") {
        cx.err(
            path,
            format!(
                "\"{s}\" is in the Nix store, which is world-readable: keep secrets outside it"
            ),
        );
        None
    } else {
        Some(PathBuf::from(s))
    }
}
