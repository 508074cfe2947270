//! LLDAP's GraphQL API: every request is parsed and validated against the vendor schema
//! (`lldap/schema.graphql` from the shared contracts) with apollo-compiler, variables are coerced
//! against the operation's variable definitions, then the operation is executed over the
//! in-memory model. Execution is schema-driven (apollo-compiler's executor resolves one field at a
//! time and builds exactly the requested shape: aliases, fragments, `__typename`, null
//! propagation), the resolvers reproduce LLDAP's semantics and error texts.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use apollo_compiler::executable::OperationType;
use apollo_compiler::request::coerce_variable_values;
use apollo_compiler::resolvers::{Execution, FieldError, ObjectValue, ResolveInfo, ResolvedValue};
use apollo_compiler::response::{JsonMap, JsonValue};
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};
use serde_json::{json, Value};

use super::model::{
    self, AttributeSchema, AttributeType, Kind, LldapError, State, UserFilter, ADMIN_GROUP,
    PASSWORD_MANAGER_GROUP, READONLY_GROUP,
};
use super::{sql, time};

/// The validated vendor schema.
pub struct Contract {
    schema: Valid<Schema>,
    path: PathBuf,
}

/// Why the contract could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("cannot read the LLDAP GraphQL contract {path}: {source} (set PAAS_CONTRACTS to the shared contracts directory)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the LLDAP GraphQL contract {path} is not a valid schema:\n{errors}")]
    Invalid { path: PathBuf, errors: String },
}

impl Contract {
    /// Loads and validates `<contracts_dir>/lldap/schema.graphql`.
    pub fn load(contracts_dir: &Path) -> Result<Self, ContractError> {
        let path = contracts_dir.join("lldap").join("schema.graphql");
        let text = std::fs::read_to_string(&path).map_err(|source| ContractError::Read {
            path: path.clone(),
            source,
        })?;
        let schema =
            Schema::parse_and_validate(text, &path).map_err(|e| ContractError::Invalid {
                path: path.clone(),
                errors: e.errors.to_string(),
            })?;
        Ok(Self { schema, path })
    }

    /// Where the schema was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Who sends the request (from the JWT).
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: String,
}

/// The result of handling one GraphQL HTTP request.
pub struct Outcome {
    /// HTTP status (200, or 400 for request errors as juniper-actix answers).
    pub status: u16,
    /// The JSON body (serialized directly to keep the selection order of the keys).
    pub body: String,
    /// Contract violations found in the request (invalid document, variables, body shape).
    pub violations: Vec<String>,
    /// Executed operations: (operation name or "<anonymous>", "query"/"mutation", root fields).
    pub operations: Vec<(String, &'static str, Vec<String>)>,
    /// Rows of every user list evaluated (`users`, each `Group.users`), in order.
    pub user_lists: Vec<u64>,
}

/// Handles a request body (already parsed as JSON): a single request or a batch (array).
pub fn handle(contract: &Contract, state: &mut State, actor: &Actor, body: &Value) -> Outcome {
    let mut out = Outcome {
        status: 200,
        body: String::new(),
        violations: Vec::new(),
        operations: Vec::new(),
        user_lists: Vec::new(),
    };
    match body {
        Value::Array(items) => {
            let mut responses = Vec::new();
            for item in items {
                let (ok, resp) = handle_single(contract, state, actor, item, &mut out);
                if !ok {
                    out.status = 400;
                }
                responses.push(resp);
            }
            out.body = format!("[{}]", responses.join(","));
        }
        _ => {
            let (ok, resp) = handle_single(contract, state, actor, body, &mut out);
            if !ok {
                out.status = 400;
            }
            out.body = resp;
        }
    }
    out
}

fn request_error(message: impl Into<String>) -> String {
    json!({ "errors": [ { "message": message.into() } ] }).to_string()
}

/// The response body of a successful execution: `{"data": …, "errors": […]}`.
#[derive(serde::Serialize)]
struct ResponseBody<'a> {
    data: &'a Option<JsonMap>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [apollo_compiler::response::GraphQLError],
}

fn handle_single(
    contract: &Contract,
    state: &mut State,
    actor: &Actor,
    req: &Value,
    out: &mut Outcome,
) -> (bool, String) {
    let Some(obj) = req.as_object() else {
        out.violations
            .push("GraphQL request body is not a JSON object".into());
        return (false, request_error("invalid request body"));
    };
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "query" | "variables" | "operationName" | "extensions"
        ) {
            out.violations
                .push(format!("GraphQL request body has unknown key {key:?}"));
        }
    }
    let Some(query) = obj.get("query").and_then(Value::as_str) else {
        out.violations
            .push("GraphQL request body has no string \"query\"".into());
        return (false, request_error("missing field `query`"));
    };
    let operation_name = match obj.get("operationName") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            out.violations
                .push(format!("operationName is not a string: {other}"));
            return (false, request_error("invalid type for `operationName`"));
        }
    };
    let variables: JsonMap = match obj.get("variables") {
        None | Some(Value::Null) => JsonMap::new(),
        Some(v @ Value::Object(_)) => match serde_json::from_value(v.clone()) {
            Ok(m) => m,
            Err(e) => {
                out.violations
                    .push(format!("variables cannot be read: {e}"));
                return (false, request_error("invalid variables"));
            }
        },
        Some(other) => {
            out.violations
                .push(format!("variables is not a JSON object: {other}"));
            return (false, request_error("invalid type for `variables`"));
        }
    };

    let document = match ExecutableDocument::parse_and_validate(
        &contract.schema,
        query.to_owned(),
        "request.graphql",
    ) {
        Ok(d) => d,
        Err(with_errors) => {
            let errors: Vec<Value> = with_errors
                .errors
                .iter()
                .map(|d| serde_json::to_value(d.to_json()).unwrap_or(Value::Null))
                .collect();
            out.violations.push(format!(
                "GraphQL document does not validate against {}:\n{}\n--- document ---\n{}",
                contract.path.display(),
                with_errors.errors,
                query
            ));
            return (false, json!({ "errors": errors }).to_string());
        }
    };
    let operation = match document.operations.get(operation_name) {
        Ok(op) => op,
        Err(e) => {
            let err = e.to_graphql_error(&document.sources);
            out.violations.push(format!(
                "cannot select the operation (operationName {operation_name:?}): {}",
                e.message()
            ));
            return (false, json!({ "errors": [err] }).to_string());
        }
    };
    let coerced = match coerce_variable_values(&contract.schema, operation, &variables) {
        Ok(v) => v,
        Err(e) => {
            let err = e.to_graphql_error(&document.sources);
            out.violations.push(format!(
                "variables do not match the operation's variable definitions: {}\n--- document ---\n{}\n--- variables ---\n{}",
                e.message(),
                query,
                obj.get("variables").cloned().unwrap_or(Value::Null)
            ));
            return (false, json!({ "errors": [err] }).to_string());
        }
    };

    let is_mutation = operation.operation_type == OperationType::Mutation;
    let op_name = operation
        .name
        .as_ref()
        .map(|n| n.to_string())
        .unwrap_or_else(|| "<anonymous>".into());
    let ctx = Ctx {
        state: RefCell::new(state),
        schemas: RefCell::new(None),
        actor: actor.clone(),
        root_fields: RefCell::new(Vec::new()),
        user_lists: RefCell::new(Vec::new()),
    };
    let root = Node {
        ctx: &ctx,
        kind: if is_mutation {
            NodeKind::Mutation
        } else {
            NodeKind::Query
        },
    };
    let result = Execution::new(&contract.schema, &document)
        .operation(operation)
        .coerced_variable_values(&coerced)
        // juniper (LLDAP) answers introspection queries.
        .enable_schema_introspection(true)
        .execute_sync(&root);
    out.operations.push((
        op_name,
        if is_mutation { "mutation" } else { "query" },
        ctx.root_fields.take(),
    ));
    out.user_lists.extend(ctx.user_lists.take());
    match result {
        Ok(mut resp) => {
            // juniper reports the resolver's message as is.
            for e in &mut resp.errors {
                if let Some(m) = e.message.strip_prefix("resolver error: ") {
                    e.message = m.to_owned();
                }
            }
            let body = ResponseBody {
                data: &resp.data,
                errors: &resp.errors,
            };
            match serde_json::to_string(&body) {
                Ok(b) => (true, b),
                Err(e) => (
                    false,
                    request_error(format!("cannot serialize the response: {e}")),
                ),
            }
        }
        Err(e) => {
            out.violations
                .push(format!("request error during execution: {}", e.message()));
            (
                false,
                json!({ "errors": [e.to_graphql_error(&document.sources)] }).to_string(),
            )
        }
    }
}

// ---- execution ------------------------------------------------------------------------------

/// The public schemas, computed once per request (mutations invalidate them).
struct SchemaCache {
    user: Vec<AttributeSchema>,
    user_rc: Vec<Rc<AttributeSchema>>,
    group: Vec<AttributeSchema>,
    group_rc: Vec<Rc<AttributeSchema>>,
}

struct Ctx<'s> {
    state: RefCell<&'s mut State>,
    schemas: RefCell<Option<Rc<SchemaCache>>>,
    actor: Actor,
    root_fields: RefCell<Vec<String>>,
    /// Rows returned by each user list evaluated (LLDAP's `list_users`).
    user_lists: RefCell<Vec<u64>>,
}

impl Ctx<'_> {
    fn schemas(&self) -> Rc<SchemaCache> {
        if let Some(c) = self.schemas.borrow().as_ref() {
            return c.clone();
        }
        let st = self.state.borrow();
        let user = st.public_schema(Kind::User);
        let group = st.public_schema(Kind::Group);
        let cache = Rc::new(SchemaCache {
            user_rc: user.iter().cloned().map(Rc::new).collect(),
            group_rc: group.iter().cloned().map(Rc::new).collect(),
            user,
            group,
        });
        *self.schemas.borrow_mut() = Some(cache.clone());
        cache
    }

    fn is_admin(&self) -> bool {
        self.state
            .borrow()
            .is_member_of_name(&self.actor.user_id, ADMIN_GROUP)
    }

    /// Admins, password managers and strict-readonly users can read everything.
    fn can_read_all(&self) -> bool {
        let st = self.state.borrow();
        [ADMIN_GROUP, PASSWORD_MANAGER_GROUP, READONLY_GROUP]
            .iter()
            .any(|g| st.is_member_of_name(&self.actor.user_id, g))
    }

    fn require_admin(&self, message: &str) -> Result<(), FieldError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(err(message))
        }
    }
}

#[derive(Clone)]
enum NodeKind {
    Query,
    Mutation,
    User(String),
    Group(i32),
    AttributeValue(Rc<AttributeSchema>, Vec<String>),
    AttributeSchema(Rc<AttributeSchema>),
    Schema,
    AttributeList(Kind),
    ObjectClass(String, bool),
    Success,
}

struct Node<'c, 's> {
    ctx: &'c Ctx<'s>,
    kind: NodeKind,
}

fn err(msg: impl Into<String>) -> FieldError {
    FieldError {
        message: msg.into(),
    }
}

impl From<LldapError> for FieldErrorWrap {
    fn from(e: LldapError) -> Self {
        FieldErrorWrap(err(e.0))
    }
}

/// Lets `?` convert model errors into field errors.
struct FieldErrorWrap(FieldError);

fn lift<T>(r: Result<T, LldapError>) -> Result<T, FieldError> {
    r.map_err(|e| FieldErrorWrap::from(e).0)
}

fn s<'x>(v: impl Into<String>) -> ResolvedValue<'x> {
    ResolvedValue::leaf(JsonValue::from(v.into()))
}

fn b<'x>(v: bool) -> ResolvedValue<'x> {
    ResolvedValue::leaf(JsonValue::from(v))
}

fn arg_str(info: &ResolveInfo<'_>, name: &str) -> Result<String, FieldError> {
    info.arguments()
        .get(name)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| err(format!("missing argument {name}")))
}

fn arg_i32(info: &ResolveInfo<'_>, name: &str) -> Result<i32, FieldError> {
    info.arguments()
        .get(name)
        .and_then(|v| v.as_i64())
        .and_then(|v| i32::try_from(v).ok())
        .ok_or_else(|| err(format!("missing argument {name}")))
}

fn arg_bool(info: &ResolveInfo<'_>, name: &str) -> Result<bool, FieldError> {
    info.arguments()
        .get(name)
        .and_then(|v| v.as_bool())
        .ok_or_else(|| err(format!("missing argument {name}")))
}

/// An argument as plain serde_json.
fn arg_json(info: &ResolveInfo<'_>, name: &str) -> Value {
    info.arguments()
        .get(name)
        .and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or(Value::Null)
}

fn opt_str(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// `[AttributeValueInput!]` → (name, values)
fn attribute_inputs(v: &Value, key: &str) -> Vec<(String, Vec<String>)> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|a| {
                    let name = opt_str(a, "name").unwrap_or_default();
                    let values = a
                        .get("value")
                        .and_then(Value::as_array)
                        .map(|vs| {
                            vs.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default();
                    (name, values)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn string_list(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// LLDAP's `consolidate_attributes`: attributes keyed by lower-case name, with the deprecated
/// firstName/lastName/avatar fields as fallbacks.
fn consolidate(
    attributes: Vec<(String, Vec<String>)>,
    first_name: Option<String>,
    last_name: Option<String>,
    avatar: Option<String>,
) -> Vec<(String, Vec<String>)> {
    let mut map: std::collections::BTreeMap<String, (String, Vec<String>)> = attributes
        .into_iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), (n.to_ascii_lowercase(), v)))
        .collect();
    for (name, value) in [
        ("first_name", first_name),
        ("last_name", last_name),
        ("avatar", avatar),
    ] {
        if let Some(val) = value {
            map.entry(name.to_owned())
                .or_insert_with(|| (name.to_owned(), vec![val]));
        }
    }
    map.into_values().collect()
}

struct Unpacked {
    email: Option<String>,
    display_name: Option<String>,
    attributes: Vec<(String, Vec<String>)>,
}

/// LLDAP's `unpack_attributes` for users.
fn unpack(
    state: &State,
    attributes: Vec<(String, Vec<String>)>,
    is_admin: bool,
) -> Result<Unpacked, LldapError> {
    let mut out = Unpacked {
        email: None,
        display_name: None,
        attributes: Vec::new(),
    };
    for (name, values) in attributes {
        let (name, values) = state.deserialize_attribute(Kind::User, &name, &values, is_admin)?;
        match name.as_str() {
            "mail" => out.email = values.into_iter().next(),
            "display_name" => out.display_name = values.into_iter().next(),
            _ => out.attributes.push((name, values)),
        }
    }
    Ok(out)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(Ok(v)) = s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16)) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// LLDAP's `RequestFilter::try_into_domain_filter`.
fn to_filter(state: &State, v: &Value) -> Result<UserFilter, String> {
    let set: Vec<(&String, &Value)> = v
        .as_object()
        .map(|m| m.iter().filter(|(_, v)| !v.is_null()).collect())
        .unwrap_or_default();
    if set.is_empty() {
        return Err("No field specified in request filter".into());
    }
    if set.len() > 1 {
        return Err("Multiple fields specified in request filter".into());
    }
    let (key, val) = set[0];
    match key.as_str() {
        "any" | "all" => {
            let subs = val
                .as_array()
                .map(|a| a.iter().map(|f| to_filter(state, f)).collect())
                .unwrap_or_else(|| Ok(Vec::new()))?;
            Ok(if key == "any" {
                UserFilter::Or(subs)
            } else {
                UserFilter::And(subs)
            })
        }
        "not" => Ok(UserFilter::Not(Box::new(to_filter(state, val)?))),
        "memberOf" => Ok(UserFilter::MemberOf(
            val.as_str().unwrap_or_default().to_owned(),
        )),
        "memberOfId" => Ok(UserFilter::MemberOfId(
            val.as_i64()
                .and_then(|i| i32::try_from(i).ok())
                .unwrap_or_default(),
        )),
        "eq" => {
            let field = opt_str(val, "field").unwrap_or_default();
            let value = opt_str(val, "value").unwrap_or_default();
            let lower = field.to_ascii_lowercase();
            let attr = |name: &str, typ: AttributeType| -> Result<UserFilter, String> {
                let schema = AttributeSchema {
                    name: name.into(),
                    attribute_type: typ,
                    is_list: false,
                    is_visible: true,
                    is_editable: true,
                    is_hardcoded: true,
                    is_readonly: false,
                };
                let v = model::normalize_values(name, std::slice::from_ref(&value), &schema)
                    .map_err(|e| e.0)?;
                Ok(UserFilter::Attribute(
                    name.into(),
                    v.into_iter().next().unwrap_or_default(),
                ))
            };
            match lower.as_str() {
                "memberof" | "ismemberof" => Ok(UserFilter::MemberOf(value)),
                "objectclass" | "dn" | "distinguishedname" | "entrydn" => {
                    Err("Ldap fields not supported in request filter".into())
                }
                "uid" | "user_id" | "id" => Ok(UserFilter::UserId(value)),
                "mail" | "email" => Ok(UserFilter::Email(value)),
                "cn" | "displayname" | "display_name" => Ok(UserFilter::DisplayName(value)),
                "givenname" | "first_name" | "firstname" => {
                    attr("first_name", AttributeType::String)
                }
                "sn" | "last_name" | "lastname" => attr("last_name", AttributeType::String),
                "avatar" | "jpegphoto" => attr("avatar", AttributeType::JpegPhoto),
                "creationdate" | "createtimestamp" | "creation_date" => Ok(UserFilter::Date(
                    "creation_date",
                    time::parse_rfc3339(&value).unwrap_or(i64::MIN),
                )),
                "modifytimestamp" | "modifydate" | "modified_date" => Ok(UserFilter::Date(
                    "modified_date",
                    time::parse_rfc3339(&value).unwrap_or(i64::MIN),
                )),
                "pwdchangedtime" | "passwordmodifydate" | "password_modified_date" => {
                    Ok(UserFilter::Date(
                        "password_modified_date",
                        time::parse_rfc3339(&value).unwrap_or(i64::MIN),
                    ))
                }
                "entryuuid" | "uuid" => Ok(UserFilter::Uuid(value)),
                _ => {
                    let schema = state.public_schema(Kind::User);
                    match schema.iter().find(|a| a.name == lower) {
                        None => Err(format!("Unknown request filter: {field}")),
                        Some(a) if a.is_list => {
                            Err("Equality not supported for list fields".into())
                        }
                        Some(a) => {
                            let v =
                                model::normalize_values(&lower, std::slice::from_ref(&value), a)
                                    .map_err(|e| e.0)?;
                            Ok(UserFilter::Attribute(
                                lower.clone(),
                                v.into_iter().next().unwrap_or_default(),
                            ))
                        }
                    }
                }
            }
        }
        other => Err(format!("Unknown request filter key {other}")),
    }
}

impl<'c, 's> Node<'c, 's> {
    fn child<'a>(&'a self, kind: NodeKind) -> ResolvedValue<'a> {
        ResolvedValue::object(Node {
            ctx: self.ctx,
            kind,
        })
    }

    fn list<'a>(&'a self, kinds: Vec<NodeKind>) -> ResolvedValue<'a> {
        let ctx = self.ctx;
        ResolvedValue::list(
            kinds
                .into_iter()
                .map(move |kind| ResolvedValue::object(Node { ctx, kind })),
        )
    }

    fn resolve_query<'a>(
        &'a self,
        info: &ResolveInfo<'_>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        let ctx = self.ctx;
        match info.field_name() {
            "apiVersion" => Ok(s("1.0")),
            "user" => {
                let uid = percent_decode(&arg_str(info, "userId")?).to_ascii_lowercase();
                if uid != ctx.actor.user_id && !ctx.can_read_all() {
                    return Err(err("Unauthorized access to user data"));
                }
                if ctx.state.borrow().user(&uid).is_none() {
                    return Err(err(format!("Entity not found: `{uid}`")));
                }
                Ok(self.child(NodeKind::User(uid)))
            }
            "users" => {
                if !ctx.can_read_all() {
                    return Err(err("Unauthorized access to user list"));
                }
                let st = ctx.state.borrow();
                let filter = match arg_json(info, "filters") {
                    Value::Null => UserFilter::True,
                    f => to_filter(&st, &f).map_err(err)?,
                };
                // What SQLite would refuse (`Expression tree is too large`), LLDAP reports as a
                // database error of the field.
                lift(sql::check_user_list(&filter))?;
                let ids: Vec<NodeKind> = st
                    .list_users(&filter)
                    .into_iter()
                    .map(|u| NodeKind::User(u.id.clone()))
                    .collect();
                drop(st);
                ctx.user_lists.borrow_mut().push(ids.len() as u64);
                Ok(self.list(ids))
            }
            "groups" => {
                if !ctx.can_read_all() {
                    return Err(err("Unauthorized access to group list"));
                }
                let ids: Vec<NodeKind> = ctx
                    .state
                    .borrow()
                    .groups
                    .keys()
                    .map(|g| NodeKind::Group(*g))
                    .collect();
                Ok(self.list(ids))
            }
            "group" => {
                let gid = arg_i32(info, "groupId")?;
                if !ctx.can_read_all() {
                    return Err(err("Unauthorized access to group data"));
                }
                if ctx.state.borrow().group(gid).is_none() {
                    return Err(err(format!("Entity not found: `GroupId({gid})`")));
                }
                Ok(self.child(NodeKind::Group(gid)))
            }
            "schema" => Ok(self.child(NodeKind::Schema)),
            _ => Err(self.unknown_field_error(info)),
        }
    }

    fn resolve_mutation<'a>(
        &'a self,
        info: &ResolveInfo<'_>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        let ctx = self.ctx;
        // The mutation may change the attribute schemas.
        *ctx.schemas.borrow_mut() = None;
        let success = || Ok(self.child(NodeKind::Success));
        match info.field_name() {
            "createUser" => {
                ctx.require_admin("Unauthorized user creation")?;
                let input = arg_json(info, "user");
                let uid = opt_str(&input, "id").unwrap_or_default();
                let mut st = ctx.state.borrow_mut();
                let attrs = consolidate(
                    attribute_inputs(&input, "attributes"),
                    opt_str(&input, "firstName"),
                    opt_str(&input, "lastName"),
                    opt_str(&input, "avatar"),
                );
                let unpacked = lift(unpack(&st, attrs, true))?;
                let email = opt_str(&input, "email")
                    .or(unpacked.email)
                    .ok_or_else(|| err("Email is required when creating a new user"))?;
                let display_name = opt_str(&input, "displayName").or(unpacked.display_name);
                let id = lift(st.create_user(&uid, &email, display_name, unpacked.attributes))?;
                Ok(self.child(NodeKind::User(id)))
            }
            "createGroup" | "createGroupWithDetails" => {
                ctx.require_admin("Unauthorized group creation")?;
                let (name, attrs) = if info.field_name() == "createGroup" {
                    (arg_str(info, "name")?, Vec::new())
                } else {
                    let req = arg_json(info, "request");
                    (
                        opt_str(&req, "displayName").unwrap_or_default(),
                        attribute_inputs(&req, "attributes"),
                    )
                };
                let mut st = ctx.state.borrow_mut();
                let attrs = attrs
                    .into_iter()
                    .map(|(n, v)| st.deserialize_attribute(Kind::Group, &n, &v, true))
                    .collect::<Result<Vec<_>, _>>();
                let attrs = lift(attrs)?;
                let gid = lift(st.create_group(&name, attrs))?;
                Ok(self.child(NodeKind::Group(gid)))
            }
            "updateUser" => {
                let input = arg_json(info, "user");
                let uid = opt_str(&input, "id")
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let is_admin = ctx.is_admin();
                if !is_admin && uid != ctx.actor.user_id {
                    return Err(err("Unauthorized user update"));
                }
                let mut st = ctx.state.borrow_mut();
                let attrs = consolidate(
                    attribute_inputs(&input, "insertAttributes"),
                    opt_str(&input, "firstName"),
                    opt_str(&input, "lastName"),
                    opt_str(&input, "avatar"),
                );
                let (delete, insert): (Vec<_>, Vec<_>) = attrs
                    .into_iter()
                    .partition(|(_, v)| v == &vec![String::new()]);
                let mut delete_attributes: Vec<String> =
                    delete.into_iter().map(|(n, _)| n).collect();
                delete_attributes.extend(string_list(&input, "removeAttributes"));
                let unpacked = lift(unpack(&st, insert, is_admin))?;
                let display_name = unpacked.display_name.or_else(|| {
                    delete_attributes
                        .iter()
                        .any(|a| a == "display_name")
                        .then(String::new)
                });
                let delete_attributes = delete_attributes
                    .into_iter()
                    .filter(|a| a != "mail" && a != "display_name")
                    .collect();
                lift(st.update_user(
                    &uid,
                    opt_str(&input, "email").or(unpacked.email),
                    opt_str(&input, "displayName").or(display_name),
                    delete_attributes,
                    unpacked.attributes,
                ))?;
                success()
            }
            "updateGroup" => {
                ctx.require_admin("Unauthorized group update")?;
                let input = arg_json(info, "group");
                let gid = input
                    .get("id")
                    .and_then(Value::as_i64)
                    .and_then(|i| i32::try_from(i).ok())
                    .unwrap_or_default();
                let inserts = attribute_inputs(&input, "insertAttributes");
                let new_name = opt_str(&input, "displayName").or_else(|| {
                    inserts
                        .iter()
                        .find(|(n, _)| n == "display_name")
                        .and_then(|(_, v)| v.first().cloned())
                });
                if gid == 1 && new_name.is_some() {
                    return Err(err("Cannot change lldap_admin group name"));
                }
                let mut st = ctx.state.borrow_mut();
                let inserts = inserts
                    .into_iter()
                    .filter(|(n, _)| n != "display_name")
                    .map(|(n, v)| st.deserialize_attribute(Kind::Group, &n, &v, true))
                    .collect::<Result<Vec<_>, _>>();
                let inserts = lift(inserts)?;
                let removes = string_list(&input, "removeAttributes")
                    .into_iter()
                    .filter(|a| a != "display_name")
                    .collect();
                lift(st.update_group(gid, new_name, removes, inserts))?;
                success()
            }
            "addUserToGroup" => {
                ctx.require_admin("Unauthorized group membership modification")?;
                let uid = arg_str(info, "userId")?;
                let gid = arg_i32(info, "groupId")?;
                lift(ctx.state.borrow_mut().add_user_to_group(&uid, gid))?;
                success()
            }
            "removeUserFromGroup" => {
                ctx.require_admin("Unauthorized group membership modification")?;
                let uid = arg_str(info, "userId")?.to_ascii_lowercase();
                let gid = arg_i32(info, "groupId")?;
                if uid == ctx.actor.user_id && gid == 1 {
                    return Err(err("Cannot remove admin rights for current user"));
                }
                lift(ctx.state.borrow_mut().remove_user_from_group(&uid, gid))?;
                success()
            }
            "deleteUser" => {
                let uid = arg_str(info, "userId")?.to_ascii_lowercase();
                ctx.require_admin("Unauthorized user deletion")?;
                if uid == ctx.actor.user_id {
                    return Err(err("Cannot delete current user"));
                }
                lift(ctx.state.borrow_mut().delete_user(&uid))?;
                success()
            }
            "deleteGroup" => {
                ctx.require_admin("Unauthorized group deletion")?;
                let gid = arg_i32(info, "groupId")?;
                if gid == 1 {
                    return Err(err("Cannot delete admin group"));
                }
                lift(ctx.state.borrow_mut().delete_group(gid))?;
                success()
            }
            f @ ("addUserAttribute" | "addGroupAttribute") => {
                let name = arg_str(info, "name")?;
                let bad = model::invalid_attribute_name_chars(&name);
                let kind = if f == "addUserAttribute" {
                    Kind::User
                } else {
                    Kind::Group
                };
                if !bad.is_empty() {
                    let chars: String = bad.into_iter().collect();
                    return Err(err(match kind {
                        Kind::User => format!("Cannot create attribute with invalid name. Valid characters: a-z, A-Z, 0-9, and dash (-). Invalid chars found: {chars}"),
                        Kind::Group => "Cannot create attribute with invalid name. Valid characters: a-z, A-Z, 0-9, and dash (-)".to_owned(),
                    }));
                }
                ctx.require_admin("Unauthorized attribute creation")?;
                let typ = AttributeType::from_graphql(&arg_str(info, "attributeType")?)
                    .ok_or_else(|| err("invalid attributeType"))?;
                lift(ctx.state.borrow_mut().add_attribute(
                    kind,
                    &name,
                    typ,
                    arg_bool(info, "isList")?,
                    arg_bool(info, "isVisible")?,
                    arg_bool(info, "isEditable")?,
                ))?;
                success()
            }
            f @ ("deleteUserAttribute" | "deleteGroupAttribute") => {
                ctx.require_admin("Unauthorized attribute deletion")?;
                let kind = if f == "deleteUserAttribute" {
                    Kind::User
                } else {
                    Kind::Group
                };
                let name = arg_str(info, "name")?;
                lift(ctx.state.borrow_mut().delete_attribute(kind, &name))?;
                success()
            }
            f @ ("addUserObjectClass" | "addGroupObjectClass") => {
                ctx.require_admin("Unauthorized object class addition")?;
                let kind = if f.starts_with("addUser") {
                    Kind::User
                } else {
                    Kind::Group
                };
                let name = arg_str(info, "name")?;
                lift(ctx.state.borrow_mut().add_object_class(kind, &name))?;
                success()
            }
            f @ ("deleteUserObjectClass" | "deleteGroupObjectClass") => {
                ctx.require_admin("Unauthorized object class deletion")?;
                let kind = if f.starts_with("deleteUser") {
                    Kind::User
                } else {
                    Kind::Group
                };
                let name = arg_str(info, "name")?;
                lift(ctx.state.borrow_mut().delete_object_class(kind, &name))?;
                success()
            }
            _ => Err(self.unknown_field_error(info)),
        }
    }

    fn resolve_user<'a>(
        &'a self,
        uid: &str,
        info: &ResolveInfo<'_>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        let st = self.ctx.state.borrow();
        let u = st
            .users
            .get(uid)
            .ok_or_else(|| err(format!("Entity not found: `{uid}`")))?;
        let attr = |name: &str| u.attributes.get(name).and_then(|v| v.first()).cloned();
        Ok(match info.field_name() {
            "id" => s(&u.id),
            "email" => s(&u.email),
            "displayName" => s(u.display_name.clone().unwrap_or_default()),
            "firstName" => s(attr("first_name").unwrap_or_default()),
            "lastName" => s(attr("last_name").unwrap_or_default()),
            "avatar" => match attr("avatar") {
                Some(a) => s(a),
                None => ResolvedValue::null(),
            },
            "creationDate" => s(time::format_rfc3339_z(u.creation_date)),
            "uuid" => s(&u.uuid),
            "attributes" => {
                let cache = self.ctx.schemas();
                let kinds = st
                    .user_attribute_values_in(u, &cache.user)
                    .into_iter()
                    .map(|(i, values)| NodeKind::AttributeValue(cache.user_rc[i].clone(), values))
                    .collect();
                drop(st);
                self.list(kinds)
            }
            "groups" => {
                let kinds = st
                    .groups_of(uid)
                    .into_iter()
                    .map(|g| NodeKind::Group(g.id))
                    .collect();
                drop(st);
                self.list(kinds)
            }
            _ => return Err(self.unknown_field_error(info)),
        })
    }

    fn resolve_group<'a>(
        &'a self,
        gid: i32,
        info: &ResolveInfo<'_>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        let st = self.ctx.state.borrow();
        let g = st
            .group(gid)
            .ok_or_else(|| err(format!("Entity not found: `GroupId({gid})`")))?;
        Ok(match info.field_name() {
            "id" => ResolvedValue::leaf(JsonValue::Number(i64::from(g.id).into())),
            "displayName" => s(&g.display_name),
            "creationDate" => s(time::format_rfc3339_z(g.creation_date)),
            "uuid" => s(&g.uuid),
            "attributes" => {
                let cache = self.ctx.schemas();
                let kinds = st
                    .group_attribute_values_in(g, &cache.group)
                    .into_iter()
                    .map(|(i, values)| NodeKind::AttributeValue(cache.group_rc[i].clone(), values))
                    .collect();
                drop(st);
                self.list(kinds)
            }
            "users" => {
                drop(st);
                if !self.ctx.can_read_all() {
                    return Err(err("Unauthorized access to group data"));
                }
                // LLDAP lists them with `list_users(MemberOfId(gid))`.
                let filter = UserFilter::MemberOfId(gid);
                lift(sql::check_user_list(&filter))?;
                let kinds: Vec<NodeKind> = self
                    .ctx
                    .state
                    .borrow()
                    .list_users(&filter)
                    .into_iter()
                    .map(|u| NodeKind::User(u.id.clone()))
                    .collect();
                self.ctx.user_lists.borrow_mut().push(kinds.len() as u64);
                self.list(kinds)
            }
            _ => return Err(self.unknown_field_error(info)),
        })
    }
}

impl ObjectValue for Node<'_, '_> {
    fn type_name(&self) -> &str {
        match &self.kind {
            NodeKind::Query => "Query",
            NodeKind::Mutation => "Mutation",
            NodeKind::User(_) => "User",
            NodeKind::Group(_) => "Group",
            NodeKind::AttributeValue(..) => "AttributeValue",
            NodeKind::AttributeSchema(_) => "AttributeSchema",
            NodeKind::Schema => "Schema",
            NodeKind::AttributeList(_) => "AttributeList",
            NodeKind::ObjectClass(..) => "ObjectClassInfo",
            NodeKind::Success => "Success",
        }
    }

    fn resolve_field<'a>(
        &'a self,
        info: &'a ResolveInfo<'a>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        match &self.kind {
            NodeKind::Query => {
                self.ctx
                    .root_fields
                    .borrow_mut()
                    .push(info.field_name().to_owned());
                self.resolve_query(info)
            }
            NodeKind::Mutation => {
                self.ctx
                    .root_fields
                    .borrow_mut()
                    .push(info.field_name().to_owned());
                self.resolve_mutation(info)
            }
            NodeKind::User(uid) => self.resolve_user(uid, info),
            NodeKind::Group(gid) => self.resolve_group(*gid, info),
            NodeKind::AttributeValue(schema, values) => Ok(match info.field_name() {
                "name" => s(&schema.name),
                "value" => ResolvedValue::list(values.iter().map(|v| s(v.as_str()))),
                "schema" => self.child(NodeKind::AttributeSchema(schema.clone())),
                _ => return Err(self.unknown_field_error(info)),
            }),
            NodeKind::AttributeSchema(a) => Ok(match info.field_name() {
                "name" => s(&a.name),
                "attributeType" => s(a.attribute_type.as_graphql()),
                "isList" => b(a.is_list),
                "isVisible" => b(a.is_visible),
                "isEditable" => b(a.is_editable),
                "isHardcoded" => b(a.is_hardcoded),
                "isReadonly" => b(a.is_readonly),
                _ => return Err(self.unknown_field_error(info)),
            }),
            NodeKind::Schema => Ok(match info.field_name() {
                "userSchema" => self.child(NodeKind::AttributeList(Kind::User)),
                "groupSchema" => self.child(NodeKind::AttributeList(Kind::Group)),
                _ => return Err(self.unknown_field_error(info)),
            }),
            NodeKind::AttributeList(kind) => {
                let st = self.ctx.state.borrow();
                Ok(match info.field_name() {
                    "attributes" => {
                        let kinds = st
                            .public_schema(*kind)
                            .into_iter()
                            .map(|a| NodeKind::AttributeSchema(Rc::new(a)))
                            .collect();
                        drop(st);
                        self.list(kinds)
                    }
                    "extraLdapObjectClasses" => {
                        let (_, extra) = st.object_classes(*kind);
                        ResolvedValue::list(extra.into_iter().map(s))
                    }
                    "ldapObjectClasses" => {
                        let (default, extra) = st.object_classes(*kind);
                        let kinds = default
                            .into_iter()
                            .map(|c| NodeKind::ObjectClass(c.to_owned(), true))
                            .chain(extra.into_iter().map(|c| NodeKind::ObjectClass(c, false)))
                            .collect();
                        drop(st);
                        self.list(kinds)
                    }
                    _ => return Err(self.unknown_field_error(info)),
                })
            }
            NodeKind::ObjectClass(name, hardcoded) => Ok(match info.field_name() {
                "objectClass" => s(name.as_str()),
                "isHardcoded" => b(*hardcoded),
                _ => return Err(self.unknown_field_error(info)),
            }),
            NodeKind::Success => Ok(match info.field_name() {
                "ok" => b(true),
                _ => return Err(self.unknown_field_error(info)),
            }),
        }
    }
}
