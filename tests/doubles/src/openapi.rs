//! A contract checker for OpenAPI 3.0 (JSON/YAML) and 3.1 (YAML/JSON) documents.
//!
//! [`Contract::load`] reads one or more documents of a service; [`Contract::check_request`] finds the
//! documented operation for a method and path (path templates, the `servers` base path), checks the
//! required path/query/header parameters and their schemas, rejects undocumented query parameters,
//! and validates the request body against the operation's `requestBody` schema for the content type
//! sent; [`Contract::check_response`] validates a response against the schema documented for its
//! status code. Schemas are validated with the `jsonschema` crate using the whole document as the
//! root, so `#/components/...` references resolve; OpenAPI 3.0's `nullable: true` is rewritten to a
//! null-allowing schema first (3.0 documents are validated as draft 4, 3.1 as draft 2020-12).
//! Formats are not asserted (real servers send e.g. GUIDs without dashes for `format: uuid`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::http;
use serde_json::{json, Map, Value};

/// Why a document could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("cannot read the OpenAPI document {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse the OpenAPI document {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("the OpenAPI document {path} is not usable: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// One parameter of an operation.
#[derive(Debug, Clone)]
struct Param {
    name: String,
    location: String,
    required: bool,
    /// JSON pointer (without `#`) to the parameter's schema, if it has one.
    schema_ptr: Option<String>,
    /// The schema itself (references followed once), to coerce string values.
    schema: Value,
}

#[derive(Debug, Clone)]
struct Operation {
    doc: usize,
    method: String,
    /// The full path template including the base path, e.g. `/ocs/v2.php/cloud/users/{userId}`.
    template: String,
    regex: regex::Regex,
    param_names: Vec<String>,
    literal_len: usize,
    params: Vec<Param>,
    /// Pointer to the operation object.
    ptr: String,
    body_required: bool,
    /// Media type (lower-case, without parameters) → pointer to its schema (None: no schema).
    body: Option<Vec<(String, Option<String>)>>,
}

struct Document {
    label: String,
    root: Arc<Value>,
    draft: jsonschema::Draft,
}

/// A handle to a matched operation (returned by [`Contract::check_request`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRef {
    index: usize,
    /// `"GET /api/v4/users/{id}"`: the documented method and path template.
    pub endpoint: String,
    /// The operation's `operationId`, if any.
    pub operation_id: Option<String>,
}

/// What [`Contract::check_request`] found.
#[derive(Debug, Clone, Default)]
pub struct RequestCheck {
    /// The documented operation, if the path and method are documented.
    pub operation: Option<OperationRef>,
    /// Path parameters by name (percent-decoded).
    pub path_params: BTreeMap<String, String>,
    /// Everything that does not conform, one message each.
    pub violations: Vec<String>,
}

/// A request as the checker sees it.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The path without the query string (still percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

/// Options of a contract.
#[derive(Debug, Clone, Default)]
pub struct ContractOptions {
    /// Query parameters accepted everywhere although undocumented (e.g. Nextcloud's `format`).
    pub extra_query_params: Vec<String>,
    /// A JSON or URL-encoded body is accepted for operations documented with a form body only
    /// (GitLab's Grape accepts both for every operation): it is validated against the form's
    /// schema.
    pub json_for_form_bodies: bool,
}

/// The documents of one service.
pub struct Contract {
    name: String,
    docs: Vec<Document>,
    ops: Vec<Operation>,
    options: ContractOptions,
    validators: Mutex<HashMap<(usize, String), Arc<jsonschema::Validator>>>,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contract")
            .field("name", &self.name)
            .field(
                "documents",
                &self.docs.iter().map(|d| &d.label).collect::<Vec<_>>(),
            )
            .field("operations", &self.ops.len())
            .finish()
    }
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Reads a JSON or YAML file into a JSON value.
pub fn read_document(path: &Path) -> Result<Value, ContractError> {
    let text = std::fs::read_to_string(path).map_err(|source| ContractError::Read {
        path: path.to_owned(),
        source,
    })?;
    let is_json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_str(&text).map_err(|e| ContractError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    } else {
        serde_norway::from_str(&text).map_err(|e| ContractError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }
}

impl Contract {
    /// Loads the documents of one service from files (`.json` as JSON, anything else as YAML).
    /// `patch` may correct a document before use (only for documented vendor errors; each
    /// double says why in a comment).
    pub fn load(
        name: &str,
        files: &[PathBuf],
        options: ContractOptions,
        patch: impl Fn(&Path, &mut Value),
    ) -> Result<Self, ContractError> {
        let mut docs = Vec::new();
        for f in files {
            let mut v = read_document(f)?;
            patch(f, &mut v);
            docs.push((f.clone(), v));
        }
        Self::from_values(name, docs, options)
    }

    /// Builds a contract from parsed documents (label, document).
    pub fn from_values(
        name: &str,
        docs: Vec<(PathBuf, Value)>,
        options: ContractOptions,
    ) -> Result<Self, ContractError> {
        let mut out_docs = Vec::new();
        let mut ops = Vec::new();
        for (i, (label, mut doc)) in docs.into_iter().enumerate() {
            let invalid = |message: String| ContractError::Invalid {
                path: label.clone(),
                message,
            };
            let version = doc
                .get("openapi")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("no `openapi` version field".into()))?
                .to_owned();
            let draft = if version.starts_with("3.0") {
                convert_nullable(&mut doc);
                jsonschema::Draft::Draft4
            } else if version.starts_with("3.1") {
                jsonschema::Draft::Draft202012
            } else {
                return Err(invalid(format!("unsupported OpenAPI version {version}")));
            };
            let base = base_path(&doc);
            let paths = doc
                .get("paths")
                .and_then(Value::as_object)
                .ok_or_else(|| invalid("no `paths` object".into()))?;
            for (template, item) in paths {
                let item_ptr = format!("/paths/{}", escape_pointer(template));
                let (item_ptr, item) = deref(&doc, &item_ptr, item);
                let item_params = collect_params(&doc, &format!("{item_ptr}/parameters"), item);
                for m in METHODS {
                    let Some(op) = item.get(m) else { continue };
                    let ptr = format!("{item_ptr}/{m}");
                    let mut params = item_params.clone();
                    for p in collect_params(&doc, &format!("{ptr}/parameters"), op) {
                        params.retain(|q| !(q.name == p.name && q.location == p.location));
                        params.push(p);
                    }
                    let full = format!("{base}{template}");
                    let (regex, param_names, literal_len) =
                        template_regex(&full).map_err(invalid)?;
                    let (body_required, body) = match op.get("requestBody") {
                        None => (false, None),
                        Some(rb) => {
                            let (rb_ptr, rb) = deref(&doc, &format!("{ptr}/requestBody"), rb);
                            let required =
                                rb.get("required").and_then(Value::as_bool) == Some(true);
                            let mut media = Vec::new();
                            if let Some(content) = rb.get("content").and_then(Value::as_object) {
                                for (mt, mo) in content {
                                    let has_schema = mo.get("schema").is_some();
                                    media.push((
                                        normalize_media(mt),
                                        has_schema.then(|| {
                                            format!(
                                                "{rb_ptr}/content/{}/schema",
                                                escape_pointer(mt)
                                            )
                                        }),
                                    ));
                                }
                            }
                            (required, Some(media))
                        }
                    };
                    ops.push(Operation {
                        doc: i,
                        method: m.to_ascii_uppercase(),
                        template: full,
                        regex,
                        param_names,
                        literal_len,
                        params,
                        ptr,
                        body_required,
                        body,
                    });
                }
            }
            out_docs.push(Document {
                label: label.display().to_string(),
                root: Arc::new(doc),
                draft,
            });
        }
        Ok(Self {
            name: name.to_owned(),
            docs: out_docs,
            ops,
            options,
            validators: Mutex::new(HashMap::new()),
        })
    }

    /// The service name given at load time.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of documented operations.
    pub fn operation_count(&self) -> usize {
        self.ops.len()
    }

    /// The documented operation for a method and path (no other checks).
    pub fn find(&self, method: &str, path: &str) -> Option<OperationRef> {
        let (idx, _) = self.match_path(method, path).ok()?;
        Some(self.op_ref(idx))
    }

    fn op_ref(&self, index: usize) -> OperationRef {
        let op = &self.ops[index];
        let operation_id = self.docs[op.doc]
            .root
            .pointer(&op.ptr)
            .and_then(|o| o.get("operationId"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        OperationRef {
            index,
            endpoint: format!("{} {}", op.method, op.template),
            operation_id,
        }
    }

    /// Finds the most specific template matching the path; Err(true) if the path is documented
    /// for other methods only.
    fn match_path(
        &self,
        method: &str,
        path: &str,
    ) -> Result<(usize, BTreeMap<String, String>), bool> {
        let mut best: Option<(usize, usize, usize)> = None; // (index, #params, literal len)
        let mut path_known = false;
        for (i, op) in self.ops.iter().enumerate() {
            if !op.regex.is_match(path) {
                continue;
            }
            path_known = true;
            if !op.method.eq_ignore_ascii_case(method) {
                continue;
            }
            let better = match best {
                None => true,
                Some((_, n, l)) => {
                    op.param_names.len() < n || (op.param_names.len() == n && op.literal_len > l)
                }
            };
            if better {
                best = Some((i, op.param_names.len(), op.literal_len));
            }
        }
        let Some((i, _, _)) = best else {
            return Err(path_known);
        };
        let op = &self.ops[i];
        let mut values = BTreeMap::new();
        if let Some(caps) = op.regex.captures(path) {
            for (k, name) in op.param_names.iter().enumerate() {
                if let Some(m) = caps.get(k + 1) {
                    values.insert(name.clone(), percent_decode(m.as_str()));
                }
            }
        }
        Ok((i, values))
    }

    /// Checks a request against the documents.
    pub fn check_request(&self, req: &RequestParts<'_>) -> RequestCheck {
        let mut out = RequestCheck::default();
        let (idx, path_values) = match self.match_path(req.method, req.path) {
            Ok(v) => v,
            Err(true) => {
                out.violations.push(format!(
                    "method {} is not documented for {} in the {} contract",
                    req.method, req.path, self.name
                ));
                return out;
            }
            Err(false) => {
                out.violations.push(format!(
                    "path {} is not documented in the {} contract",
                    req.path, self.name
                ));
                return out;
            }
        };
        out.operation = Some(self.op_ref(idx));
        out.path_params = path_values.clone();
        let op = &self.ops[idx];
        // Query parameters: `a[b]=v` belongs to a parameter `a` (object) or `a[]` (array).
        let mut query: BTreeMap<String, Vec<(Option<String>, String)>> = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(req.query.unwrap_or("").as_bytes()) {
            let (base, sub) = match k.find('[') {
                Some(p) if k.ends_with(']') => (
                    k[..p].to_owned(),
                    Some(k[p + 1..k.len() - 1].to_owned()).filter(|s| !s.is_empty()),
                ),
                _ => (k.to_string(), None),
            };
            query.entry(base).or_default().push((sub, v.into_owned()));
        }
        let documented_query: Vec<String> = op
            .params
            .iter()
            .filter(|p| p.location == "query")
            .map(|p| p.name.trim_end_matches("[]").to_owned())
            .collect();
        for name in query.keys() {
            if !documented_query.contains(name) && !self.options.extra_query_params.contains(name) {
                out.violations.push(format!(
                    "query parameter `{name}` is not documented for {}",
                    self.op_ref(idx).endpoint
                ));
            }
        }
        for p in &op.params {
            let raw: Option<Value> = match p.location.as_str() {
                "path" => path_values.get(&p.name).map(|v| coerce(&p.schema, v)),
                "header" => {
                    let vals: Vec<&str> = req
                        .headers
                        .get_all(p.name.as_str())
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .collect();
                    vals.first().map(|v| coerce(&p.schema, v))
                }
                "query" => query
                    .get(p.name.trim_end_matches("[]"))
                    .map(|vals| query_value(&p.schema, vals)),
                "cookie" => cookie(req.headers, &p.name).map(|v| coerce(&p.schema, &v)),
                _ => None,
            };
            match raw {
                None if p.required => out.violations.push(format!(
                    "required {} parameter `{}` is missing",
                    p.location, p.name
                )),
                None => {}
                Some(value) => {
                    if let Some(ptr) = &p.schema_ptr {
                        for e in self.validate(op.doc, ptr, &value) {
                            out.violations.push(format!(
                                "{} parameter `{}` = {value}: {e}",
                                p.location, p.name
                            ));
                        }
                    }
                }
            }
        }
        // Body.
        let ct = req
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(normalize_media);
        match &op.body {
            None => {
                if !req.body.is_empty() {
                    out.violations.push(format!(
                        "a request body ({} bytes) was sent but the operation documents none",
                        req.body.len()
                    ));
                }
            }
            Some(media) => {
                if req.body.is_empty() {
                    if op.body_required {
                        out.violations
                            .push("the operation requires a request body; none was sent".into());
                    }
                } else {
                    self.check_body(op, media, ct.as_deref(), req.body, &mut out.violations);
                }
            }
        }
        out
    }

    fn check_body(
        &self,
        op: &Operation,
        media: &[(String, Option<String>)],
        ct: Option<&str>,
        body: &[u8],
        out: &mut Vec<String>,
    ) {
        let Some(ct) = ct else {
            out.push("a request body was sent without a Content-Type".into());
            return;
        };
        let documented: Vec<&str> = media.iter().map(|(m, _)| m.as_str()).collect();
        let mut entry = media.iter().find(|(m, _)| media_matches(m, ct));
        if entry.is_none()
            && self.options.json_for_form_bodies
            && (is_json(ct) || ct == "application/x-www-form-urlencoded")
        {
            entry = media.iter().find(|(m, _)| {
                m == "multipart/form-data" || m == "application/x-www-form-urlencoded"
            });
        }
        let Some((_, schema_ptr)) = entry else {
            out.push(format!(
                "request Content-Type {ct} is not documented (documented: {})",
                documented.join(", ")
            ));
            return;
        };
        let schema = schema_ptr
            .as_ref()
            .and_then(|p| self.docs[op.doc].root.pointer(p).map(|s| (p, s)));
        let value = if is_json(ct) {
            match serde_json::from_slice::<Value>(body) {
                Ok(v) => v,
                Err(e) => {
                    out.push(format!("the request body is not valid JSON: {e}"));
                    return;
                }
            }
        } else if ct == "application/x-www-form-urlencoded" {
            let pairs: Vec<(String, String)> = form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            form_value(&self.docs[op.doc].root, schema.map(|s| s.1), &pairs)
        } else if ct == "multipart/form-data" {
            match parse_multipart(body) {
                Some(pairs) => form_value(&self.docs[op.doc].root, schema.map(|s| s.1), &pairs),
                None => {
                    out.push("the multipart/form-data body cannot be parsed".into());
                    return;
                }
            }
        } else {
            // Other media types (text/plain…): no schema check beyond the type.
            return;
        };
        if let Some((ptr, _)) = schema {
            for e in self.validate(op.doc, ptr, &value) {
                out.push(format!("request body: {e}"));
            }
        }
    }

    /// Checks a response the double is about to send. Returns `None` when the status is not
    /// documented for the operation (nothing to check against), else the violations.
    pub fn check_response(
        &self,
        op: &OperationRef,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Option<Vec<String>> {
        let o = self.ops.get(op.index)?;
        let doc = &self.docs[o.doc];
        let responses = doc.root.pointer(&format!("{}/responses", o.ptr))?;
        let code = status.to_string();
        let range = format!("{}XX", status / 100);
        let (key, resp) = [code.as_str(), range.as_str(), "default"]
            .into_iter()
            .find_map(|k| responses.get(k).map(|r| (k.to_owned(), r)))?;
        let base_ptr = format!("{}/responses/{}", o.ptr, escape_pointer(&key));
        let (resp_ptr, resp) = deref(&doc.root, &base_ptr, resp);
        let mut out = Vec::new();
        let content = resp.get("content").and_then(Value::as_object);
        let Some(content) = content.filter(|c| !c.is_empty()) else {
            if status == 204 && !body.is_empty() {
                out.push(format!(
                    "a 204 response must have no body ({} bytes sent)",
                    body.len()
                ));
            }
            return Some(out);
        };
        if body.is_empty() {
            out.push(format!(
                "the {status} response is documented with a body ({}) but is empty",
                content.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
            return Some(out);
        }
        let ct = content_type.map(normalize_media);
        let Some(ct) = ct else {
            out.push(format!("the {status} response has no Content-Type"));
            return Some(out);
        };
        let Some((mt, mo)) = content
            .iter()
            .find(|(m, _)| media_matches(&normalize_media(m), &ct))
        else {
            out.push(format!(
                "response Content-Type {ct} is not documented for {status} (documented: {})",
                content.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
            return Some(out);
        };
        if mo.get("schema").is_none() || !is_json(&ct) {
            return Some(out);
        }
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                out.push(format!("the {status} response body is not valid JSON: {e}"));
                return Some(out);
            }
        };
        let ptr = format!("{resp_ptr}/content/{}/schema", escape_pointer(mt));
        for e in self.validate(o.doc, &ptr, &value) {
            out.push(format!("{status} response body: {e}"));
        }
        Some(out)
    }

    /// Validates a value against the schema at `ptr` (a JSON pointer into document `doc`).
    fn validate(&self, doc: usize, ptr: &str, value: &Value) -> Vec<String> {
        let validator = {
            let key = (doc, ptr.to_owned());
            let cached = crate::service::lock(&self.validators).get(&key).cloned();
            match cached {
                Some(v) => v,
                None => {
                    let d = &self.docs[doc];
                    let mut root = (*d.root).clone();
                    if let Some(obj) = root.as_object_mut() {
                        obj.insert("$ref".into(), Value::String(format!("#{}", fragment(ptr))));
                    }
                    match jsonschema::options()
                        .with_draft(d.draft)
                        .should_validate_formats(false)
                        .build(&root)
                    {
                        Ok(v) => {
                            let v = Arc::new(v);
                            crate::service::lock(&self.validators).insert(key, v.clone());
                            v
                        }
                        Err(e) => {
                            return vec![format!(
                                "the document's schema at #{ptr} cannot be compiled: {e}"
                            )]
                        }
                    }
                }
            }
        };
        validator
            .iter_errors(value)
            .take(5)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("at {at}: {e}")
                }
            })
            .collect()
    }
}

/// The path part of the first server URL (`/` and absolute URLs' hosts dropped).
fn base_path(doc: &Value) -> String {
    let url = doc
        .get("servers")
        .and_then(Value::as_array)
        .and_then(|s| s.first())
        .and_then(|s| s.get("url"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let path = match url.find("://") {
        Some(p) => {
            let rest = &url[p + 3..];
            rest.find('/').map(|i| &rest[i..]).unwrap_or("")
        }
        None => url,
    };
    path.trim_end_matches('/').to_owned()
}

fn template_regex(template: &str) -> Result<(regex::Regex, Vec<String>, usize), String> {
    let mut re = String::from("^");
    let mut names = Vec::new();
    let mut literal = 0;
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let lit = &rest[..start];
        re.push_str(&regex::escape(lit));
        literal += lit.len();
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("unclosed `{{` in path template {template}"))?
            + start;
        names.push(rest[start + 1..end].to_owned());
        re.push_str("([^/]+)");
        rest = &rest[end + 1..];
    }
    re.push_str(&regex::escape(rest));
    literal += rest.len();
    re.push('$');
    let regex = regex::Regex::new(&re).map_err(|e| e.to_string())?;
    Ok((regex, names, literal))
}

/// A JSON pointer as a URI fragment (`{`, `}`, quotes, spaces… percent-encoded).
fn fragment(ptr: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'~')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.');
    percent_encoding::utf8_percent_encode(ptr, SET).to_string()
}

fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Follows `$ref`s (local ones) from a value found at `ptr`.
fn deref<'a>(root: &'a Value, ptr: &str, mut v: &'a Value) -> (String, &'a Value) {
    let mut ptr = ptr.to_owned();
    for _ in 0..16 {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let Some(target) = r.strip_prefix('#') else {
            break;
        };
        match root.pointer(target) {
            Some(t) => {
                ptr = target.to_owned();
                v = t;
            }
            None => break,
        }
    }
    (ptr, v)
}

fn collect_params(root: &Value, ptr: &str, holder: &Value) -> Vec<Param> {
    let mut out = Vec::new();
    let Some(list) = holder.get("parameters").and_then(Value::as_array) else {
        return out;
    };
    for (i, p) in list.iter().enumerate() {
        let (pptr, p) = deref(root, &format!("{ptr}/{i}"), p);
        let (Some(name), Some(location)) = (
            p.get("name").and_then(Value::as_str),
            p.get("in").and_then(Value::as_str),
        ) else {
            continue;
        };
        let schema_ptr = p.get("schema").map(|_| format!("{pptr}/schema"));
        let schema = p
            .get("schema")
            .map(|s| deref(root, &format!("{pptr}/schema"), s).1.clone())
            .unwrap_or(Value::Null);
        out.push(Param {
            name: name.to_owned(),
            location: location.to_owned(),
            required: location == "path"
                || p.get("required").and_then(Value::as_bool) == Some(true),
            schema_ptr,
            schema,
        });
    }
    out
}

/// The schema's type(s), looking through `anyOf`/`allOf` wrappers made for nullable.
fn schema_types(schema: &Value) -> Vec<String> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => ["anyOf", "allOf", "oneOf"]
            .iter()
            .filter_map(|k| schema.get(*k).and_then(Value::as_array))
            .flatten()
            .flat_map(schema_types)
            .collect(),
    }
}

/// Turns a string (from a path, query, header or form) into the JSON value the schema expects.
fn coerce(schema: &Value, raw: &str) -> Value {
    let types = schema_types(schema);
    for t in &types {
        match t.as_str() {
            "integer" => {
                if let Ok(n) = raw.parse::<i64>() {
                    return json!(n);
                }
            }
            "number" => {
                if let Ok(n) = raw.parse::<f64>() {
                    if let Some(n) = serde_json::Number::from_f64(n) {
                        return Value::Number(n);
                    }
                }
            }
            "boolean" => match raw {
                "true" => return Value::Bool(true),
                "false" => return Value::Bool(false),
                _ => {}
            },
            _ => {}
        }
    }
    Value::String(raw.to_owned())
}

fn query_value(schema: &Value, vals: &[(Option<String>, String)]) -> Value {
    let types = schema_types(schema);
    if types.iter().any(|t| t == "object") {
        let mut m = Map::new();
        for (sub, v) in vals {
            m.insert(sub.clone().unwrap_or_default(), Value::String(v.clone()));
        }
        return Value::Object(m);
    }
    if types.iter().any(|t| t == "array") {
        let items = schema.get("items").cloned().unwrap_or(Value::Null);
        return Value::Array(
            vals.iter()
                .flat_map(|(_, v)| v.split(',').map(str::to_owned).collect::<Vec<_>>())
                .map(|v| coerce(&items, &v))
                .collect(),
        );
    }
    match vals.last() {
        Some((_, v)) => coerce(schema, v),
        None => Value::Null,
    }
}

/// A form body as an object, values coerced by the property schemas.
fn form_value(root: &Value, schema: Option<&Value>, pairs: &[(String, String)]) -> Value {
    let schema = schema.map(|s| deref(root, "", s).1);
    let props = schema.and_then(|s| s.get("properties"));
    let mut m = Map::new();
    for (k, v) in pairs {
        let (name, is_array) = match k.strip_suffix("[]") {
            Some(n) => (n.to_owned(), true),
            None => (k.clone(), false),
        };
        let ps = props
            .and_then(|p| p.get(&name))
            .map(|s| deref(root, "", s).1.clone())
            .unwrap_or(Value::Null);
        if is_array || schema_types(&ps).iter().any(|t| t == "array") {
            let items = ps.get("items").cloned().unwrap_or(Value::Null);
            let entry = m.entry(name).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(a) = entry {
                a.push(coerce(&items, v));
            }
        } else {
            m.insert(name, coerce(&ps, v));
        }
    }
    Value::Object(m)
}

/// A minimal multipart/form-data parser for text fields (boundary taken from the first line).
fn parse_multipart(body: &[u8]) -> Option<Vec<(String, String)>> {
    let text = String::from_utf8_lossy(body);
    let first = text.lines().next()?.trim_end();
    if !first.starts_with("--") {
        return None;
    }
    let mut out = Vec::new();
    for part in text.split(first).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        let (head, value) = part.split_once("\r\n\r\n")?;
        let name = head
            .split(';')
            .find_map(|s| s.trim().strip_prefix("name=\""))
            .and_then(|s| s.split('"').next())?;
        out.push((
            name.to_owned(),
            value.strip_suffix("\r\n").unwrap_or(value).to_owned(),
        ));
    }
    Some(out)
}

fn cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
}

/// `application/json; charset=utf-8` → `application/json`.
pub fn normalize_media(m: &str) -> String {
    m.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_json(m: &str) -> bool {
    m == "application/json" || m == "text/json" || m.ends_with("+json")
}

/// Whether a documented media range (`application/*+json`, `*/*`, `text/*`) matches `ct`.
fn media_matches(documented: &str, ct: &str) -> bool {
    if documented == ct || documented == "*/*" {
        return true;
    }
    let (Some((dt, ds)), Some((ct_t, ct_s))) = (documented.split_once('/'), ct.split_once('/'))
    else {
        return false;
    };
    if dt != ct_t {
        return false;
    }
    if ds == "*" {
        return true;
    }
    if let Some(suffix) = ds.strip_prefix('*') {
        return ct_s.ends_with(suffix);
    }
    false
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Rewrites OpenAPI 3.0 `nullable: true` into JSON Schema.
fn convert_nullable(v: &mut Value) {
    match v {
        Value::Array(a) => a.iter_mut().for_each(convert_nullable),
        Value::Object(m) => {
            for (_, child) in m.iter_mut() {
                convert_nullable(child);
            }
            if m.get("nullable").and_then(Value::as_bool) != Some(true) {
                return;
            }
            m.remove("nullable");
            if let Some(Value::Array(e)) = m.get_mut("enum") {
                if !e.contains(&Value::Null) {
                    e.push(Value::Null);
                }
            }
            match m.get("type").cloned() {
                Some(Value::String(t)) => {
                    m.insert("type".into(), json!([t, "null"]));
                }
                Some(_) => {}
                None => {
                    let composite = ["$ref", "allOf", "oneOf", "anyOf"]
                        .iter()
                        .any(|k| m.contains_key(*k));
                    if composite {
                        let inner = std::mem::take(m);
                        m.insert(
                            "anyOf".into(),
                            json!([{"type": "null"}, Value::Object(inner)]),
                        );
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn doc30() -> Value {
        json!({
            "openapi": "3.0.3",
            "info": {"title": "t", "version": "1"},
            "servers": [{"url": "https://example.com/api/v1"}],
            "paths": {
                "/items/{id}": {
                    "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
                    "get": {
                        "parameters": [
                            {"name": "X-Req", "in": "header", "required": true, "schema": {"type": "boolean"}},
                            {"name": "verbose", "in": "query", "schema": {"type": "boolean"}}
                        ],
                        "responses": {
                            "200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}},
                            "404": {"description": "missing"}
                        }
                    },
                    "delete": {"responses": {"204": {"description": "gone"}}}
                },
                "/items/special": {"get": {"responses": {"200": {"description": "ok"}}}},
                "/items": {
                    "post": {
                        "requestBody": {"required": true, "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}},
                            "application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/NewItem"}}
                        }},
                        "responses": {"201": {"description": "created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}}}
                    },
                    "get": {
                        "parameters": [{"name": "attrs", "in": "query", "schema": {"type": "object"}}],
                        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}}}}}
                    }
                }
            },
            "components": {"schemas": {
                "Item": {"type": "object", "required": ["id", "name"], "properties": {
                    "id": {"type": "integer"}, "name": {"type": "string"},
                    "note": {"type": "string", "nullable": true},
                    "parent": {"nullable": true, "allOf": [{"$ref": "#/components/schemas/Ref"}]}
                }},
                "Ref": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}},
                "NewItem": {"type": "object", "required": ["name"], "additionalProperties": false, "properties": {
                    "name": {"type": "string"}, "count": {"type": "integer"}, "admin": {"type": "boolean"}
                }}
            }}
        })
    }

    fn contract() -> Contract {
        Contract::from_values(
            "test",
            vec![(PathBuf::from("doc30.json"), doc30())],
            ContractOptions::default(),
        )
        .unwrap()
    }

    fn req<'a>(
        method: &'a str,
        path: &'a str,
        query: Option<&'a str>,
        h: &'a http::HeaderMap,
        body: &'a [u8],
    ) -> RequestParts<'a> {
        RequestParts {
            method,
            path,
            query,
            headers: h,
            body,
        }
    }

    #[test]
    fn a_conforming_request_has_no_violation_and_finds_its_template() {
        let c = contract();
        let h = headers(&[("x-req", "true")]);
        let r = c.check_request(&req(
            "GET",
            "/api/v1/items/7",
            Some("verbose=false"),
            &h,
            b"",
        ));
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.operation.unwrap().endpoint, "GET /api/v1/items/{id}");
        assert_eq!(r.path_params["id"], "7");
        // A literal segment beats a template.
        let r = c.check_request(&req("GET", "/api/v1/items/special", None, &h, b""));
        assert_eq!(r.operation.unwrap().endpoint, "GET /api/v1/items/special");
    }

    #[test]
    fn wrong_path_wrong_method_and_missing_base_path_are_violations() {
        let c = contract();
        let h = headers(&[("x-req", "true")]);
        let r = c.check_request(&req("GET", "/api/v1/itemz/7", None, &h, b""));
        assert!(r.operation.is_none());
        assert!(
            r.violations[0].contains("not documented"),
            "{:?}",
            r.violations
        );
        let r = c.check_request(&req("GET", "/items/7", None, &h, b""));
        assert!(
            r.operation.is_none(),
            "the servers base path is part of the path"
        );
        let r = c.check_request(&req("PUT", "/api/v1/items/7", None, &h, b""));
        assert!(r.violations[0].contains("method PUT"), "{:?}", r.violations);
    }

    #[test]
    fn missing_header_bad_param_types_and_unknown_query_are_violations() {
        let c = contract();
        let none = headers(&[]);
        let r = c.check_request(&req("GET", "/api/v1/items/7", None, &none, b""));
        assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
        assert!(r.violations[0].contains("header parameter `X-Req`"));
        let h = headers(&[("x-req", "yes")]);
        let r = c.check_request(&req(
            "GET",
            "/api/v1/items/abc",
            Some("verbose=1&colour=red"),
            &h,
            b"",
        ));
        let all = r.violations.join("\n");
        assert!(all.contains("path parameter `id`"), "{all}");
        assert!(all.contains("header parameter `X-Req`"), "{all}");
        assert!(all.contains("query parameter `verbose`"), "{all}");
        assert!(all.contains("`colour` is not documented"), "{all}");
    }

    #[test]
    fn bodies_are_checked_for_type_content_type_and_presence() {
        let c = contract();
        let json_h = headers(&[("content-type", "application/json")]);
        let ok = br#"{"name":"a","count":2}"#;
        assert!(c
            .check_request(&req("POST", "/api/v1/items", None, &json_h, ok))
            .violations
            .is_empty());
        let r = c.check_request(&req(
            "POST",
            "/api/v1/items",
            None,
            &json_h,
            br#"{"name":5}"#,
        ));
        assert!(
            r.violations.iter().any(|v| v.contains("request body")),
            "{:?}",
            r.violations
        );
        let r = c.check_request(&req(
            "POST",
            "/api/v1/items",
            None,
            &json_h,
            br#"{"name":"a","extra":1}"#,
        ));
        assert!(!r.violations.is_empty(), "additionalProperties false");
        let r = c.check_request(&req("POST", "/api/v1/items", None, &json_h, b""));
        assert!(r.violations[0].contains("requires a request body"));
        let text_h = headers(&[("content-type", "text/plain")]);
        let r = c.check_request(&req("POST", "/api/v1/items", None, &text_h, b"x"));
        assert!(
            r.violations[0].contains("not documented"),
            "{:?}",
            r.violations
        );
        // Forms are coerced by the property schemas.
        let form_h = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        let r = c.check_request(&req(
            "POST",
            "/api/v1/items",
            None,
            &form_h,
            b"name=a&count=3&admin=true",
        ));
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        let r = c.check_request(&req(
            "POST",
            "/api/v1/items",
            None,
            &form_h,
            b"name=a&count=three",
        ));
        assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
        // A body where none is documented.
        let h = headers(&[("x-req", "true"), ("content-type", "application/json")]);
        let r = c.check_request(&req("DELETE", "/api/v1/items/1", None, &h, b"{}"));
        assert!(r.violations[0].contains("documents none"));
    }

    #[test]
    fn deep_object_query_parameters_are_grouped() {
        let c = contract();
        let h = headers(&[]);
        let r = c.check_request(&req(
            "GET",
            "/api/v1/items",
            Some("attrs%5Bmanaged%5D=yes"),
            &h,
            b"",
        ));
        assert!(r.violations.is_empty(), "{:?}", r.violations);
    }

    #[test]
    fn responses_are_checked_against_their_status_schema_with_nullable() {
        let c = contract();
        let h = headers(&[("x-req", "true")]);
        let op = c
            .check_request(&req("GET", "/api/v1/items/7", None, &h, b""))
            .operation
            .unwrap();
        let good = br#"{"id":7,"name":"a","note":null,"parent":null}"#;
        assert_eq!(
            c.check_response(&op, 200, Some("application/json; charset=utf-8"), good),
            Some(vec![])
        );
        let good2 = br#"{"id":7,"name":"a","parent":{"id":1}}"#;
        assert_eq!(
            c.check_response(&op, 200, Some("application/json"), good2),
            Some(vec![])
        );
        let bad = br#"{"id":"7","name":"a"}"#;
        let v = c
            .check_response(&op, 200, Some("application/json"), bad)
            .unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("/id"), "{v:?}");
        let v = c
            .check_response(
                &op,
                200,
                Some("application/json"),
                br#"{"id":1,"name":"a","parent":{}}"#,
            )
            .unwrap();
        assert!(!v.is_empty(), "the $ref behind nullable allOf is enforced");
        let v = c
            .check_response(&op, 200, Some("text/html"), b"<p>")
            .unwrap();
        assert!(v[0].contains("Content-Type"), "{v:?}");
        let v = c
            .check_response(&op, 200, Some("application/json"), b"")
            .unwrap();
        assert!(v[0].contains("empty"), "{v:?}");
        assert_eq!(c.check_response(&op, 404, None, b""), Some(vec![]));
        assert_eq!(
            c.check_response(&op, 500, None, b"x"),
            None,
            "undocumented status"
        );
        let list = c.find("GET", "/api/v1/items").unwrap();
        assert!(!c
            .check_response(&list, 200, Some("application/json"), br#"[{"id":1}]"#)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn openapi_31_yaml_and_root_server_work() {
        let yaml = r##"
openapi: 3.1.0
info: {title: t, version: "1"}
servers: [{url: /}]
paths:
  /api/v1/add/thing:
    post:
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties:
                quota: {type: [number, "null"]}
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {type: array, items: {$ref: "#/components/schemas/R"}}
components:
  schemas:
    R: {type: object, required: [type], properties: {type: {enum: [success, danger]}}}
"##;
        let v: Value = serde_norway::from_str(yaml).unwrap();
        let c = Contract::from_values(
            "t31",
            vec![(PathBuf::from("t.yaml"), v)],
            ContractOptions::default(),
        )
        .unwrap();
        let h = headers(&[("content-type", "application/json")]);
        let r = c.check_request(&req(
            "POST",
            "/api/v1/add/thing",
            None,
            &h,
            br#"{"quota":null}"#,
        ));
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        let r = c.check_request(&req(
            "POST",
            "/api/v1/add/thing",
            None,
            &h,
            br#"{"quota":"x"}"#,
        ));
        assert_eq!(r.violations.len(), 1);
        let op = r.operation.unwrap();
        assert_eq!(
            c.check_response(
                &op,
                200,
                Some("application/json"),
                br#"[{"type":"success"}]"#
            ),
            Some(vec![])
        );
        assert_eq!(
            c.check_response(&op, 200, Some("application/json"), br#"[{"type":"ok"}]"#)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn multipart_bodies_are_parsed() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nbob\r\n--XyZ\r\nContent-Disposition: form-data; name=\"count\"\r\n\r\n4\r\n--XyZ--\r\n";
        let pairs = parse_multipart(body.as_bytes()).unwrap();
        assert_eq!(
            pairs,
            vec![("name".into(), "bob".into()), ("count".into(), "4".into())]
        );
    }

    #[test]
    fn media_ranges() {
        assert!(media_matches(
            "application/*+json",
            "application/merge-patch+json"
        ));
        assert!(media_matches("*/*", "text/plain"));
        assert!(!media_matches("application/json", "text/json"));
    }
}
