//! The in-memory LLDAP data model: users, groups, memberships, attribute schemas and passwords.
//!
//! The operations mirror LLDAP's backend handler (what its SQL layer does), including the error
//! texts LLDAP returns, so that a client sees the same failures as against a real server.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde_json::{json, Value};

use super::time;

/// An error as LLDAP reports it (the text becomes the GraphQL error message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LldapError(pub String);

impl LldapError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

pub(crate) fn unique_violation(column: &str) -> LldapError {
    LldapError(format!(
        "Database error: `Execution Error: error returned from database: (code: 2067) UNIQUE constraint failed: {column}`"
    ))
}

fn foreign_key_violation() -> LldapError {
    LldapError::new(
        "Database error: `Execution Error: error returned from database: (code: 787) FOREIGN KEY constraint failed`",
    )
}

pub type Result<T> = std::result::Result<T, LldapError>;

/// LLDAP's attribute types (the GraphQL enum `AttributeType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AttributeType {
    String,
    Integer,
    JpegPhoto,
    DateTime,
}

impl AttributeType {
    /// The GraphQL enum value.
    pub fn as_graphql(self) -> &'static str {
        match self {
            AttributeType::String => "STRING",
            AttributeType::Integer => "INTEGER",
            AttributeType::JpegPhoto => "JPEG_PHOTO",
            AttributeType::DateTime => "DATE_TIME",
        }
    }

    /// Parses the GraphQL enum value.
    pub fn from_graphql(s: &str) -> Option<Self> {
        Some(match s {
            "STRING" => AttributeType::String,
            "INTEGER" => AttributeType::Integer,
            "JPEG_PHOTO" => AttributeType::JpegPhoto,
            "DATE_TIME" => AttributeType::DateTime,
            _ => return None,
        })
    }
}

/// One entry of a user or group attribute schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeSchema {
    pub name: String,
    pub attribute_type: AttributeType,
    pub is_list: bool,
    pub is_visible: bool,
    pub is_editable: bool,
    pub is_hardcoded: bool,
    pub is_readonly: bool,
}

impl AttributeSchema {
    fn hardcoded(name: &str, attribute_type: AttributeType, editable: bool) -> Self {
        Self {
            name: name.to_owned(),
            attribute_type,
            is_list: false,
            is_visible: true,
            is_editable: editable,
            is_hardcoded: true,
            is_readonly: !editable,
        }
    }
}

/// A user as LLDAP stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Lower-case user id.
    pub id: String,
    pub email: String,
    pub display_name: Option<String>,
    /// Microseconds since the Unix epoch.
    pub creation_date: i64,
    pub modified_date: i64,
    pub password_modified_date: i64,
    pub uuid: String,
    /// Stored attributes (first_name, last_name, avatar and custom ones), by name, values serialized
    /// the way GraphQL returns them.
    pub attributes: BTreeMap<String, Vec<String>>,
}

/// A group as LLDAP stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: i32,
    pub display_name: String,
    pub creation_date: i64,
    pub modified_date: i64,
    pub uuid: String,
    pub attributes: BTreeMap<String, Vec<String>>,
}

/// Which schema an attribute belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

/// A user filter (LLDAP's `UserRequestFilter`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserFilter {
    True,
    False,
    UserId(String),
    Email(String),
    DisplayName(String),
    Uuid(String),
    /// A (non-list) attribute equal to the (normalized) value.
    Attribute(String, String),
    /// A primary date column (creation_date, modified_date, password_modified_date), microseconds.
    Date(&'static str, i64),
    MemberOf(String),
    MemberOfId(i32),
    /// `user_id LIKE <pattern>` (an LDAP substring filter on `uid`).
    UserIdLike(String),
    /// `lower(<column>) LIKE <pattern>` on `mail` (the lower-case e-mail) or `display_name`
    /// (any other column name matches nothing).
    Like(&'static str, String),
    /// The user has a value for this (stored) attribute (an LDAP presence filter).
    AttributePresent(String),
    And(Vec<UserFilter>),
    Or(Vec<UserFilter>),
    Not(Box<UserFilter>),
}

/// A group filter (LLDAP's `GroupRequestFilter`; only the LDAP search builds them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupFilter {
    True,
    False,
    /// The lower-case display name equals the (lower-case) value.
    DisplayName(String),
    /// `lower(lowercase_display_name) LIKE <pattern>`.
    DisplayNameLike(String),
    Uuid(String),
    GroupId(i32),
    /// The group has this user (lower-case id) as a member.
    Member(String),
    Attribute(String, String),
    AttributePresent(String),
    And(Vec<GroupFilter>),
    Or(Vec<GroupFilter>),
    Not(Box<GroupFilter>),
}

/// SQL `LIKE` as SQLite evaluates it: `%` is any run of characters, `_` any one character, ASCII
/// letters match case-insensitively, there is no escape character.
pub(crate) fn sql_like(value: &str, pattern: &str) -> bool {
    fn fold(c: char) -> char {
        c.to_ascii_lowercase()
    }
    let v: Vec<char> = value.chars().map(fold).collect();
    let p: Vec<char> = pattern.chars().map(fold).collect();
    // Iterative wildcard matching with backtracking to the last `%`.
    let (mut i, mut j) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < v.len() {
        if j < p.len() && (p[j] == '_' || (p[j] != '%' && p[j] == v[i])) {
            i += 1;
            j += 1;
        } else if j < p.len() && p[j] == '%' {
            star = Some((j, i));
            j += 1;
        } else if let Some((sj, si)) = star {
            j = sj + 1;
            i = si + 1;
            star = Some((sj, si + 1));
        } else {
            return false;
        }
    }
    p[j..].iter().all(|c| *c == '%')
}

pub const ADMIN_GROUP: &str = "lldap_admin";
pub const PASSWORD_MANAGER_GROUP: &str = "lldap_password_manager";
pub const READONLY_GROUP: &str = "lldap_strict_readonly";

const DEFAULT_USER_OBJECT_CLASSES: &[&str] =
    &["inetOrgPerson", "posixAccount", "mailAccount", "person"];
const DEFAULT_GROUP_OBJECT_CLASSES: &[&str] = &["groupOfUniqueNames", "groupOfNames"];

/// The whole LLDAP state.
#[derive(Debug, Clone)]
pub struct State {
    pub(crate) users: BTreeMap<String, User>,
    emails: HashMap<String, String>,
    pub(crate) groups: BTreeMap<i32, Group>,
    group_names: HashMap<String, i32>,
    next_group_id: i32,
    user_groups: HashMap<String, BTreeSet<i32>>,
    group_users: HashMap<i32, BTreeSet<String>>,
    /// The stored user attribute schema (first_name, last_name, avatar + custom).
    user_schema: Vec<AttributeSchema>,
    group_schema: Vec<AttributeSchema>,
    user_object_classes: Vec<String>,
    group_object_classes: Vec<String>,
    passwords: HashMap<String, String>,
    password_sets: HashMap<String, u64>,
}

fn new_uuid() -> String {
    let b: [u8; 16] = rand::random();
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-3{:01x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5], b[6] & 0x0f, b[7], (b[8] & 0x3f) | 0x80, b[9], b[10], b[11], b[12],
        b[13], b[14], b[15]
    )
}

/// Validates an attribute name the way LLDAP does (letters, digits, dash).
pub(crate) fn invalid_attribute_name_chars(name: &str) -> Vec<char> {
    name.chars()
        .filter(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        .collect()
}

/// Deserializes and normalizes attribute values against a schema entry
/// (LLDAP's `deserialize_attribute_value`).
pub(crate) fn normalize_values(
    name: &str,
    values: &[String],
    schema: &AttributeSchema,
) -> Result<Vec<String>> {
    let ctx = || LldapError(format!("While deserializing attribute {name}"));
    if !schema.is_list && values.len() != 1 {
        return Err(ctx());
    }
    values
        .iter()
        .map(|v| match schema.attribute_type {
            AttributeType::String => Ok(v.clone()),
            AttributeType::Integer => v.parse::<i64>().map(|i| i.to_string()).map_err(|_| ctx()),
            AttributeType::DateTime => time::parse_rfc3339(v)
                .map(time::format_rfc3339_offset)
                .ok_or_else(ctx),
            AttributeType::JpegPhoto => {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map_err(|_| ctx())?;
                if bytes.len() < 4 || bytes[0..3] != [0xff, 0xd8, 0xff] {
                    return Err(ctx());
                }
                Ok(v.clone())
            }
        })
        .collect()
}

impl State {
    /// A fresh LLDAP: the built-in groups and the admin user (member of `lldap_admin`).
    pub fn new(admin_id: &str, admin_email: &str, admin_password: &str) -> Self {
        let string_attr = |name: &str| AttributeSchema {
            name: name.to_owned(),
            attribute_type: AttributeType::String,
            is_list: false,
            is_visible: true,
            is_editable: true,
            is_hardcoded: true,
            is_readonly: false,
        };
        let mut avatar = string_attr("avatar");
        avatar.attribute_type = AttributeType::JpegPhoto;
        let mut state = State {
            users: BTreeMap::new(),
            emails: HashMap::new(),
            groups: BTreeMap::new(),
            group_names: HashMap::new(),
            next_group_id: 1,
            user_groups: HashMap::new(),
            group_users: HashMap::new(),
            user_schema: vec![string_attr("first_name"), string_attr("last_name"), avatar],
            group_schema: Vec::new(),
            user_object_classes: Vec::new(),
            group_object_classes: Vec::new(),
            passwords: HashMap::new(),
            password_sets: HashMap::new(),
        };
        for g in [ADMIN_GROUP, PASSWORD_MANAGER_GROUP, READONLY_GROUP] {
            // Cannot fail on a fresh state: the names are distinct.
            let _ = state.create_group(g, Vec::new());
        }
        let admin = admin_id.to_ascii_lowercase();
        let _ = state.create_user(
            &admin,
            admin_email,
            Some("Administrator".into()),
            Vec::new(),
        );
        let _ = state.add_user_to_group(&admin, 1);
        state.passwords.insert(admin, admin_password.to_owned());
        state
    }

    // ---- schema -------------------------------------------------------------------------

    /// The schema LLDAP reports over GraphQL (stored + hard-coded attributes, sorted by name).
    pub fn public_schema(&self, kind: Kind) -> Vec<AttributeSchema> {
        use AttributeType as T;
        let mut out = match kind {
            Kind::User => {
                let mut v = self.user_schema.clone();
                v.extend([
                    AttributeSchema::hardcoded("user_id", T::String, false),
                    AttributeSchema::hardcoded("creation_date", T::DateTime, false),
                    AttributeSchema::hardcoded("modified_date", T::DateTime, false),
                    AttributeSchema::hardcoded("password_modified_date", T::DateTime, false),
                    AttributeSchema::hardcoded("mail", T::String, true),
                    AttributeSchema::hardcoded("uuid", T::String, false),
                    AttributeSchema::hardcoded("display_name", T::String, true),
                ]);
                v
            }
            Kind::Group => {
                let mut v = self.group_schema.clone();
                v.extend([
                    AttributeSchema::hardcoded("group_id", T::Integer, false),
                    AttributeSchema::hardcoded("creation_date", T::DateTime, false),
                    AttributeSchema::hardcoded("modified_date", T::DateTime, false),
                    AttributeSchema::hardcoded("uuid", T::String, false),
                    AttributeSchema::hardcoded("display_name", T::String, true),
                ]);
                v
            }
        };
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn stored_schema(&self, kind: Kind) -> &Vec<AttributeSchema> {
        match kind {
            Kind::User => &self.user_schema,
            Kind::Group => &self.group_schema,
        }
    }

    /// The default and extra LDAP object classes.
    pub fn object_classes(&self, kind: Kind) -> (Vec<&'static str>, Vec<String>) {
        match kind {
            Kind::User => (
                DEFAULT_USER_OBJECT_CLASSES.to_vec(),
                self.user_object_classes.clone(),
            ),
            Kind::Group => (
                DEFAULT_GROUP_OBJECT_CLASSES.to_vec(),
                self.group_object_classes.clone(),
            ),
        }
    }

    /// `addUserAttribute` / `addGroupAttribute` (the name was validated by the caller).
    pub fn add_attribute(
        &mut self,
        kind: Kind,
        name: &str,
        attribute_type: AttributeType,
        is_list: bool,
        is_visible: bool,
        is_editable: bool,
    ) -> Result<()> {
        let name = name.to_ascii_lowercase();
        let (table, other_kind) = match kind {
            Kind::User => ("user_attribute_schema", Kind::Group),
            Kind::Group => ("group_attribute_schema", Kind::User),
        };
        if self.public_schema(kind).iter().any(|a| a.name == name) {
            return Err(unique_violation(&format!("{table}.{table}_name")));
        }
        if let Some(other) = self
            .stored_schema(other_kind)
            .iter()
            .find(|a| a.name == name)
        {
            if other.attribute_type != attribute_type {
                let (this, that) = match kind {
                    Kind::User => ("user", "group"),
                    Kind::Group => ("group", "user"),
                };
                return Err(LldapError(format!(
                    "Internal error: `A {that} attribute '{name}' already exists with type {:?}, cannot create a {this} attribute with type {:?}. Attributes with the same name must have the same type.`",
                    other.attribute_type, attribute_type
                )));
            }
        }
        let entry = AttributeSchema {
            name,
            attribute_type,
            is_list,
            is_visible,
            is_editable,
            is_hardcoded: false,
            is_readonly: false,
        };
        match kind {
            Kind::User => self.user_schema.push(entry),
            Kind::Group => self.group_schema.push(entry),
        }
        Ok(())
    }

    /// `deleteUserAttribute` / `deleteGroupAttribute`: also drops the values.
    pub fn delete_attribute(&mut self, kind: Kind, name: &str) -> Result<()> {
        let name = name.to_ascii_lowercase();
        let public = self.public_schema(kind);
        let entry = public
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| LldapError(format!("Attribute {name} is not defined in the schema")))?;
        if entry.is_hardcoded {
            return Err(LldapError(format!(
                "Permission denied: Attribute {name} cannot be deleted"
            )));
        }
        match kind {
            Kind::User => {
                self.user_schema.retain(|a| a.name != name);
                for u in self.users.values_mut() {
                    u.attributes.remove(&name);
                }
            }
            Kind::Group => {
                self.group_schema.retain(|a| a.name != name);
                for g in self.groups.values_mut() {
                    g.attributes.remove(&name);
                }
            }
        }
        Ok(())
    }

    /// `add*ObjectClass`.
    pub fn add_object_class(&mut self, kind: Kind, name: &str) -> Result<()> {
        let list = match kind {
            Kind::User => &mut self.user_object_classes,
            Kind::Group => &mut self.group_object_classes,
        };
        let lower = name.to_ascii_lowercase();
        if !list.iter().any(|c| c.to_ascii_lowercase() == lower) {
            list.push(name.to_owned());
        }
        Ok(())
    }

    /// `delete*ObjectClass`.
    pub fn delete_object_class(&mut self, kind: Kind, name: &str) -> Result<()> {
        let list = match kind {
            Kind::User => &mut self.user_object_classes,
            Kind::Group => &mut self.group_object_classes,
        };
        let lower = name.to_ascii_lowercase();
        list.retain(|c| c.to_ascii_lowercase() != lower);
        Ok(())
    }

    /// Schema lookup + read-only/editable checks + value normalization
    /// (LLDAP's GraphQL `deserialize_attribute`).
    pub fn deserialize_attribute(
        &self,
        kind: Kind,
        name: &str,
        values: &[String],
        is_admin: bool,
    ) -> Result<(String, Vec<String>)> {
        let lower = name.to_ascii_lowercase();
        let public = self.public_schema(kind);
        let schema = public
            .iter()
            .find(|a| a.name == lower)
            .ok_or_else(|| LldapError(format!("Attribute {name} is not defined in the schema")))?;
        if schema.is_readonly {
            return Err(LldapError(format!(
                "Permission denied: Attribute {name} is read-only"
            )));
        }
        if !is_admin && !schema.is_editable {
            return Err(LldapError(format!(
                "Permission denied: Attribute {name} is not editable by regular users"
            )));
        }
        Ok((lower, normalize_values(name, values, schema)?))
    }

    // ---- users --------------------------------------------------------------------------

    /// Looks up a user (id is case-insensitive).
    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.get(&id.to_ascii_lowercase())
    }

    /// The backend's `create_user`; attributes must already be deserialized.
    pub fn create_user(
        &mut self,
        id: &str,
        email: &str,
        display_name: Option<String>,
        attributes: Vec<(String, Vec<String>)>,
    ) -> Result<String> {
        let id = id.to_ascii_lowercase();
        for (name, _) in &attributes {
            if !self.user_schema.iter().any(|a| &a.name == name) {
                return Err(LldapError(format!(
                    "Internal error: `Attribute name {name} doesn't exist in the user schema,\n                                    yet was attempted to be inserted in the database`"
                )));
            }
        }
        if self.users.contains_key(&id) {
            return Err(unique_violation("users.user_id"));
        }
        let lower_email = email.to_lowercase();
        if self.emails.contains_key(&lower_email) {
            return Err(unique_violation("users.lowercase_email"));
        }
        let now = time::now_micros();
        let user = User {
            id: id.clone(),
            email: email.to_owned(),
            display_name,
            creation_date: now,
            modified_date: now,
            password_modified_date: now,
            uuid: new_uuid(),
            attributes: attributes.into_iter().collect(),
        };
        self.emails.insert(lower_email, id.clone());
        self.users.insert(id.clone(), user);
        Ok(id)
    }

    /// The backend's `update_user`.
    pub fn update_user(
        &mut self,
        id: &str,
        email: Option<String>,
        display_name: Option<String>,
        delete_attributes: Vec<String>,
        insert_attributes: Vec<(String, Vec<String>)>,
    ) -> Result<()> {
        let id = id.to_ascii_lowercase();
        for (name, _) in &insert_attributes {
            if !self.user_schema.iter().any(|a| &a.name == name) {
                return Err(LldapError(format!(
                    "Internal error: `User attribute name {name} doesn't exist in the schema, yet was attempted to be inserted in the database`"
                )));
            }
        }
        let delete_attributes: Vec<String> = delete_attributes
            .into_iter()
            .map(|a| a.to_ascii_lowercase())
            .collect();
        for name in &delete_attributes {
            if !self.user_schema.iter().any(|a| &a.name == name) {
                return Err(LldapError(format!(
                    "Internal error: `User attribute name {name} doesn't exist in the schema, yet was attempted to be removed from the database`"
                )));
            }
        }
        if !self.users.contains_key(&id) {
            return Err(LldapError::new(
                "Database error: `None of the records are updated`",
            ));
        }
        if let Some(email) = &email {
            let lower = email.to_lowercase();
            if let Some(owner) = self.emails.get(&lower) {
                if owner != &id {
                    return Err(unique_violation("users.lowercase_email"));
                }
            }
        }
        let Some(user) = self.users.get_mut(&id) else {
            return Err(LldapError::new(
                "Database error: `None of the records are updated`",
            ));
        };
        if let Some(email) = email {
            let old = std::mem::replace(&mut user.email, email);
            self.emails.remove(&old.to_lowercase());
            self.emails.insert(user.email.to_lowercase(), id.clone());
        }
        if let Some(d) = display_name {
            user.display_name = Some(d);
        }
        for name in delete_attributes {
            user.attributes.remove(&name);
        }
        for (name, values) in insert_attributes {
            user.attributes.insert(name, values);
        }
        user.modified_date = time::now_micros();
        Ok(())
    }

    /// The backend's `delete_user`.
    pub fn delete_user(&mut self, id: &str) -> Result<()> {
        let id = id.to_ascii_lowercase();
        let Some(user) = self.users.remove(&id) else {
            return Err(LldapError(format!(
                "Entity not found: `No such user: '{id}'`"
            )));
        };
        self.emails.remove(&user.email.to_lowercase());
        if let Some(groups) = self.user_groups.remove(&id) {
            for g in groups {
                if let Some(members) = self.group_users.get_mut(&g) {
                    members.remove(&id);
                }
            }
        }
        self.passwords.remove(&id);
        Ok(())
    }

    /// Groups of a user, sorted by display name (what `User.groups` returns).
    pub fn groups_of(&self, id: &str) -> Vec<&Group> {
        let mut out: Vec<&Group> = self
            .user_groups
            .get(&id.to_ascii_lowercase())
            .map(|set| set.iter().filter_map(|g| self.groups.get(g)).collect())
            .unwrap_or_default();
        out.sort_by(|a, b| a.display_name.cmp(&b.display_name));
        out
    }

    /// Members of a group, sorted by user id.
    pub fn members_of(&self, group_id: i32) -> Vec<&User> {
        self.group_users
            .get(&group_id)
            .map(|set| set.iter().filter_map(|u| self.users.get(u)).collect())
            .unwrap_or_default()
    }

    /// Whether the user is a member of the group with that name (case-insensitive).
    pub fn is_member_of_name(&self, user_id: &str, group_name: &str) -> bool {
        self.group_names
            .get(&group_name.to_lowercase())
            .and_then(|g| self.group_users.get(g))
            .is_some_and(|m| m.contains(&user_id.to_ascii_lowercase()))
    }

    /// Users matching a filter, sorted by id.
    pub fn list_users(&self, filter: &UserFilter) -> Vec<&User> {
        self.users
            .values()
            .filter(|u| self.matches(u, filter))
            .collect()
    }

    fn matches(&self, u: &User, f: &UserFilter) -> bool {
        match f {
            UserFilter::True => true,
            UserFilter::False => false,
            UserFilter::UserIdLike(p) => sql_like(&u.id, p),
            UserFilter::Like(column, p) => match *column {
                "mail" => sql_like(&u.email.to_lowercase(), p),
                // NULL LIKE … is not true.
                "display_name" => u
                    .display_name
                    .as_deref()
                    .is_some_and(|d| sql_like(&d.to_lowercase(), p)),
                // Date columns: the double keeps no SQL text of them.
                _ => false,
            },
            UserFilter::AttributePresent(name) => u.attributes.contains_key(name),
            UserFilter::UserId(id) => u.id == id.to_ascii_lowercase(),
            UserFilter::Email(e) => u.email.to_lowercase() == e.to_lowercase(),
            UserFilter::DisplayName(d) => u.display_name.as_deref().unwrap_or("") == d,
            UserFilter::Uuid(x) => &u.uuid == x,
            UserFilter::Attribute(name, value) => u
                .attributes
                .get(name)
                .is_some_and(|v| v.iter().any(|x| x == value)),
            UserFilter::Date(col, micros) => {
                let v = match *col {
                    "creation_date" => u.creation_date,
                    "modified_date" => u.modified_date,
                    _ => u.password_modified_date,
                };
                v == *micros
            }
            UserFilter::MemberOf(name) => self.is_member_of_name(&u.id, name),
            UserFilter::MemberOfId(g) => self
                .user_groups
                .get(&u.id)
                .is_some_and(|set| set.contains(g)),
            UserFilter::And(v) => v.iter().all(|f| self.matches(u, f)),
            UserFilter::Or(v) => v.iter().any(|f| self.matches(u, f)),
            UserFilter::Not(f) => !self.matches(u, f),
        }
    }

    // ---- groups -------------------------------------------------------------------------

    /// Groups matching a filter, sorted by display name (as LLDAP's `list_groups` returns them).
    pub fn list_groups(&self, filter: &GroupFilter) -> Vec<&Group> {
        let mut out: Vec<&Group> = self
            .groups
            .values()
            .filter(|g| self.group_matches(g, filter))
            .collect();
        out.sort_by(|a, b| a.display_name.cmp(&b.display_name));
        out
    }

    fn group_matches(&self, g: &Group, f: &GroupFilter) -> bool {
        match f {
            GroupFilter::True => true,
            GroupFilter::False => false,
            GroupFilter::DisplayName(n) => g.display_name.to_lowercase() == n.to_lowercase(),
            GroupFilter::DisplayNameLike(p) => sql_like(&g.display_name.to_lowercase(), p),
            GroupFilter::Uuid(x) => &g.uuid == x,
            GroupFilter::GroupId(id) => g.id == *id,
            GroupFilter::Member(uid) => self
                .group_users
                .get(&g.id)
                .is_some_and(|m| m.contains(&uid.to_ascii_lowercase())),
            GroupFilter::Attribute(name, value) => g
                .attributes
                .get(name)
                .is_some_and(|v| v.iter().any(|x| x == value)),
            GroupFilter::AttributePresent(name) => g.attributes.contains_key(name),
            GroupFilter::And(v) => v.iter().all(|f| self.group_matches(g, f)),
            GroupFilter::Or(v) => v.iter().any(|f| self.group_matches(g, f)),
            GroupFilter::Not(f) => !self.group_matches(g, f),
        }
    }

    /// Looks up a group by id.
    pub fn group(&self, id: i32) -> Option<&Group> {
        self.groups.get(&id)
    }

    /// Looks up a group by name (case-insensitive).
    pub fn group_by_name(&self, name: &str) -> Option<&Group> {
        self.group_names
            .get(&name.to_lowercase())
            .and_then(|g| self.groups.get(g))
    }

    /// The backend's `create_group`; attributes must already be deserialized.
    pub fn create_group(
        &mut self,
        display_name: &str,
        attributes: Vec<(String, Vec<String>)>,
    ) -> Result<i32> {
        let lower = display_name.to_lowercase();
        if self.group_names.contains_key(&lower) {
            return Err(unique_violation("groups.lowercase_display_name"));
        }
        for (name, _) in &attributes {
            if !self.group_schema.iter().any(|a| &a.name == name) {
                return Err(LldapError(format!(
                    "Internal error: `Attribute name {name} doesn't exist in the group schema,\n                                    yet was attempted to be inserted in the database`"
                )));
            }
        }
        let id = self.next_group_id;
        self.next_group_id += 1;
        let now = time::now_micros();
        self.groups.insert(
            id,
            Group {
                id,
                display_name: display_name.to_owned(),
                creation_date: now,
                modified_date: now,
                uuid: new_uuid(),
                attributes: attributes.into_iter().collect(),
            },
        );
        self.group_names.insert(lower, id);
        Ok(id)
    }

    /// The backend's `update_group`.
    pub fn update_group(
        &mut self,
        id: i32,
        display_name: Option<String>,
        delete_attributes: Vec<String>,
        insert_attributes: Vec<(String, Vec<String>)>,
    ) -> Result<()> {
        let delete_attributes: Vec<String> = delete_attributes
            .into_iter()
            .map(|a| a.to_ascii_lowercase())
            .collect();
        for name in &delete_attributes {
            if !self.group_schema.iter().any(|a| &a.name == name) {
                return Err(LldapError(format!(
                    "Internal error: `Group attribute name {name} doesn't exist in the schema, yet was attempted to be removed from the database`"
                )));
            }
        }
        if !self.groups.contains_key(&id) {
            return Err(LldapError::new(
                "Database error: `None of the records are updated`",
            ));
        }
        if let Some(name) = &display_name {
            let lower = name.to_lowercase();
            if let Some(owner) = self.group_names.get(&lower) {
                if *owner != id {
                    return Err(unique_violation("groups.lowercase_display_name"));
                }
            }
        }
        let Some(group) = self.groups.get_mut(&id) else {
            return Err(LldapError::new(
                "Database error: `None of the records are updated`",
            ));
        };
        if let Some(name) = display_name {
            let old = std::mem::replace(&mut group.display_name, name);
            self.group_names.remove(&old.to_lowercase());
            self.group_names
                .insert(group.display_name.to_lowercase(), id);
        }
        for name in delete_attributes {
            group.attributes.remove(&name);
        }
        for (name, values) in insert_attributes {
            group.attributes.insert(name, values);
        }
        group.modified_date = time::now_micros();
        Ok(())
    }

    /// The backend's `delete_group`.
    pub fn delete_group(&mut self, id: i32) -> Result<()> {
        let Some(group) = self.groups.remove(&id) else {
            return Err(LldapError(format!(
                "Entity not found: `No such group: 'GroupId({id})'`"
            )));
        };
        self.group_names.remove(&group.display_name.to_lowercase());
        if let Some(members) = self.group_users.remove(&id) {
            for u in members {
                if let Some(set) = self.user_groups.get_mut(&u) {
                    set.remove(&id);
                }
            }
        }
        Ok(())
    }

    /// The backend's `add_user_to_group`.
    pub fn add_user_to_group(&mut self, user_id: &str, group_id: i32) -> Result<()> {
        let uid = user_id.to_ascii_lowercase();
        if !self.users.contains_key(&uid) || !self.groups.contains_key(&group_id) {
            return Err(foreign_key_violation());
        }
        let set = self.user_groups.entry(uid.clone()).or_default();
        if !set.insert(group_id) {
            return Err(LldapError::new(
                "Database transaction error: `Transaction Error: Execution Error: error returned from database: (code: 1555) UNIQUE constraint failed: memberships.user_id, memberships.group_id`",
            ));
        }
        self.group_users.entry(group_id).or_default().insert(uid);
        if let Some(g) = self.groups.get_mut(&group_id) {
            g.modified_date = time::now_micros();
        }
        Ok(())
    }

    /// The backend's `remove_user_from_group`.
    pub fn remove_user_from_group(&mut self, user_id: &str, group_id: i32) -> Result<()> {
        let uid = user_id.to_ascii_lowercase();
        let removed = self
            .user_groups
            .get_mut(&uid)
            .is_some_and(|set| set.remove(&group_id));
        if !removed {
            return Err(LldapError(format!(
                "Entity not found: `No such membership: '{uid}' -> GroupId({group_id})`"
            )));
        }
        if let Some(m) = self.group_users.get_mut(&group_id) {
            m.remove(&uid);
        }
        if let Some(g) = self.groups.get_mut(&group_id) {
            g.modified_date = time::now_micros();
        }
        Ok(())
    }

    // ---- passwords ----------------------------------------------------------------------

    /// Sets a user's password (counted per user).
    pub fn set_password(&mut self, user_id: &str, password: &str) -> Result<()> {
        let uid = user_id.to_ascii_lowercase();
        let Some(user) = self.users.get_mut(&uid) else {
            return Err(LldapError(format!("Entity not found: `{uid}`")));
        };
        user.password_modified_date = time::now_micros();
        self.passwords.insert(uid.clone(), password.to_owned());
        *self.password_sets.entry(uid).or_default() += 1;
        Ok(())
    }

    /// Undoes the count of the last password set (passwords seeded by hand are not counted).
    pub fn forget_password_set(&mut self, user_id: &str) {
        let uid = user_id.to_ascii_lowercase();
        if let Some(n) = self.password_sets.get_mut(&uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.password_sets.remove(&uid);
            }
        }
    }

    /// Whether the user exists, has a password and it equals `password`.
    pub fn check_password(&self, user_id: &str, password: &str) -> bool {
        self.passwords
            .get(&user_id.to_ascii_lowercase())
            .is_some_and(|p| p == password)
    }

    /// The stored password (test double only).
    pub fn password(&self, user_id: &str) -> Option<&str> {
        self.passwords
            .get(&user_id.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// How many times a password was set for this user (LDAP password modify or Rust API).
    pub fn password_set_count(&self, user_id: &str) -> u64 {
        self.password_sets
            .get(&user_id.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Total number of password sets.
    pub fn password_sets_total(&self) -> u64 {
        self.password_sets.values().sum()
    }

    /// Whether the user is an LLDAP admin.
    pub fn is_admin(&self, user_id: &str) -> bool {
        self.is_member_of_name(user_id, ADMIN_GROUP)
    }

    // ---- views --------------------------------------------------------------------------

    /// The attribute values `User.attributes` returns: hard-coded ones first, then stored ones.
    pub fn user_attribute_values(&self, u: &User) -> Vec<(AttributeSchema, Vec<String>)> {
        let schema = self.public_schema(Kind::User);
        self.user_attribute_values_in(u, &schema)
            .into_iter()
            .map(|(i, v)| (schema[i].clone(), v))
            .collect()
    }

    /// Like [`State::user_attribute_values`] with the public user schema given (indices into it).
    pub fn user_attribute_values_in(
        &self,
        u: &User,
        schema: &[AttributeSchema],
    ) -> Vec<(usize, Vec<String>)> {
        let mut out = Vec::new();
        for (i, s) in schema.iter().enumerate().filter(|(_, s)| s.is_hardcoded) {
            let v = match s.name.as_str() {
                "user_id" => Some(u.id.clone()),
                "creation_date" => Some(time::format_rfc3339_offset(u.creation_date)),
                "modified_date" => Some(time::format_rfc3339_offset(u.modified_date)),
                "password_modified_date" => {
                    Some(time::format_rfc3339_offset(u.password_modified_date))
                }
                "mail" => Some(u.email.clone()),
                "uuid" => Some(u.uuid.clone()),
                "display_name" => u.display_name.clone(),
                _ => None,
            };
            if let Some(v) = v {
                out.push((i, vec![v]));
            }
        }
        for (name, values) in &u.attributes {
            if let Some(i) = schema.iter().position(|s| &s.name == name) {
                out.push((i, values.clone()));
            }
        }
        out
    }

    /// The attribute values `Group.attributes` returns.
    pub fn group_attribute_values(&self, g: &Group) -> Vec<(AttributeSchema, Vec<String>)> {
        let schema = self.public_schema(Kind::Group);
        self.group_attribute_values_in(g, &schema)
            .into_iter()
            .map(|(i, v)| (schema[i].clone(), v))
            .collect()
    }

    /// Like [`State::group_attribute_values`] with the public group schema given (indices into it).
    pub fn group_attribute_values_in(
        &self,
        g: &Group,
        schema: &[AttributeSchema],
    ) -> Vec<(usize, Vec<String>)> {
        let mut out = Vec::new();
        for (i, s) in schema.iter().enumerate().filter(|(_, s)| s.is_hardcoded) {
            let v = match s.name.as_str() {
                "group_id" => Some(g.id.to_string()),
                "creation_date" => Some(time::format_rfc3339_offset(g.creation_date)),
                "modified_date" => Some(time::format_rfc3339_offset(g.modified_date)),
                "uuid" => Some(g.uuid.clone()),
                "display_name" => Some(g.display_name.clone()),
                _ => None,
            };
            if let Some(v) = v {
                out.push((i, vec![v]));
            }
        }
        for (name, values) in &g.attributes {
            if let Some(i) = schema.iter().position(|s| &s.name == name) {
                out.push((i, values.clone()));
            }
        }
        out
    }

    /// A JSON dump of the whole state (no passwords, only whether one is set and how often).
    pub fn to_json(&self) -> Value {
        let users: Vec<Value> = self
            .users
            .values()
            .map(|u| {
                json!({
                    "id": u.id,
                    "email": u.email,
                    "displayName": u.display_name,
                    "creationDate": time::format_rfc3339_z(u.creation_date),
                    "uuid": u.uuid,
                    "attributes": u.attributes,
                    "groups": self.groups_of(&u.id).iter().map(|g| g.display_name.clone()).collect::<Vec<_>>(),
                    "hasPassword": self.passwords.contains_key(&u.id),
                    "passwordSetCount": self.password_set_count(&u.id),
                })
            })
            .collect();
        let groups: Vec<Value> = self
            .groups
            .values()
            .map(|g| {
                json!({
                    "id": g.id,
                    "displayName": g.display_name,
                    "creationDate": time::format_rfc3339_z(g.creation_date),
                    "uuid": g.uuid,
                    "attributes": g.attributes,
                    "users": self.members_of(g.id).iter().map(|u| u.id.clone()).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "users": users,
            "groups": groups,
            "userSchema": self.public_schema(Kind::User),
            "groupSchema": self.public_schema(Kind::Group),
            "extraUserObjectClasses": self.user_object_classes,
            "extraGroupObjectClasses": self.group_object_classes,
            "passwordSetsTotal": self.password_sets_total(),
        })
    }
}
