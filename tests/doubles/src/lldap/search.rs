//! The LDAP Search operation as LLDAP 0.6 answers it (its `crates/ldap` `search.rs` and
//! `core/{user,group,utils}.rs`): the search bases, the translation of an LDAP filter into
//! LLDAP's user/group request filters (including what it silently turns into "false" and what it
//! refuses), the attributes of the entries, the permission rules, and the result codes.
//!
//! API-NOTES-style, what LLDAP does and a client may not expect:
//!
//! * the scope is mostly ignored: the base DN itself (`<baseDn>`) searches users *and* groups even
//!   with scope `base`; `ou=people,<baseDn>` / `ou=groups,<baseDn>` search their subtree with scope
//!   `one` or `sub` and answer the organizational unit itself (`objectClass: top,
//!   organizationalUnit`) with scope `base`; a base under them (`uid=bob,ou=people,…`) adds
//!   `(uid=bob)` to the filter; a base outside the tree answers no entries (success, or
//!   `noSuchObject (32)` with scope `base`, RFC 4511);
//! * an unknown attribute in a filter matches nothing (no error), `(attr=*)` on a known
//!   non-custom attribute matches everything; substring filters work on `uid` (`user_id LIKE
//!   'prefix%'`, so `_` is a one-character wildcard), `mail`, `cn` and on group `cn`; on other
//!   attributes they are refused with `unwillingToPerform (53)`, as are `>=`, `<=`, `~=` and
//!   extensible matches;
//! * `cn` equality on users is case-sensitive unless the value is all lower-case (LLDAP compares
//!   the value and its lower-case form); `uid`, `mail`, group `cn` compare lower-cased;
//! * attribute names are case-insensitive; entries carry them in the spelling the client asked
//!   for, in the lower-case order of their names; `*` (or no attribute) gives LLDAP's default set
//!   in its own (lower-case) spelling plus every custom attribute; `memberOf` must be asked for;
//!   `1.1` alone gives no attribute;
//! * a user that is not an admin, a password manager or in `lldap_strict_readonly` sees only
//!   itself and the groups it is a member of, whose `member` lists only itself;
//! * a failing user or group list (e.g. a filter SQLite finds too deep, see `sql.rs`) answers
//!   `other (80)` with `Error while searching user "<base>": <database error>`;
//! * `SearchResultDone` carries a Simple Paged Results control with the number of entries
//!   (LLDAP's server adds it to every `SearchResultDone`); `sizeLimit` and `typesOnly` are
//!   ignored.

use base64::Engine as _;

use super::control::{lock, Stats};
use super::ldap::{children, encode, encode_int, envelope, integer, ldap_result, BerError, Tlv};
use super::model::{
    self, AttributeSchema, AttributeType, Group, GroupFilter, Kind, State, User, UserFilter,
};
use super::{sql, time, Shared};

// Result codes (RFC 4511 §4.1.9).
const SUCCESS: u8 = 0;
const NO_SUCH_OBJECT: u8 = 32;
const INVALID_DN_SYNTAX: u8 = 34;
const INSUFFICIENT_ACCESS_RIGHTS: u8 = 50;
const UNWILLING_TO_PERFORM: u8 = 53;
const OTHER: u8 = 80;

/// The Simple Paged Results control (RFC 2696).
const OID_PAGED_RESULTS: &str = "1.2.840.113556.1.4.319";
/// ldap3_proto's limit on the nesting of filters (a deeper request is not decoded).
const FILTER_MAX_DEPTH: usize = 128;

const DEFAULT_USER_OBJECT_CLASSES: &[&str] =
    &["inetOrgPerson", "posixAccount", "mailAccount", "person"];
const DEFAULT_GROUP_OBJECT_CLASSES: &[&str] = &["groupOfUniqueNames", "groupOfNames"];
/// What `*` (or no attribute) expands to, in LLDAP's spelling.
const ALL_USER_ATTRIBUTE_KEYS: &[&str] = &[
    "objectclass",
    "uid",
    "mail",
    "givenname",
    "sn",
    "cn",
    "jpegPhoto",
    "createtimestamp",
    "entryuuid",
];
const ALL_GROUP_ATTRIBUTE_KEYS: &[&str] = &[
    "objectclass",
    "uid",
    "cn",
    "member",
    "uniquemember",
    "entryuuid",
];

// ---- the request ------------------------------------------------------------------------------

/// `LdapSubstringFilter` (the field names give the same `Debug` text as LLDAP's messages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LdapSubstringFilter {
    pub initial: Option<String>,
    pub any: Vec<String>,
    pub final_: Option<String>,
}

impl LdapSubstringFilter {
    /// LLDAP's `SubStringFilter::to_sql_filter`: lower-cased parts joined by `%`.
    fn to_sql_filter(&self) -> String {
        let mut out = String::new();
        if let Some(i) = &self.initial {
            out.push_str(&i.to_ascii_lowercase());
        }
        out.push('%');
        for part in &self.any {
            out.push_str(&part.to_ascii_lowercase());
            out.push('%');
        }
        if let Some(f) = &self.final_ {
            out.push_str(&f.to_ascii_lowercase());
        }
        out
    }
}

/// `LdapMatchingRuleAssertion` (extensible match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LdapMatchingRuleAssertion {
    pub matching_rule: Option<String>,
    pub type_: Option<String>,
    pub match_value: String,
    pub dn_attributes: bool,
}

/// An LDAP filter (RFC 4511 §4.5.1), shaped like ldap3_proto's `LdapFilter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LdapFilter {
    And(Vec<LdapFilter>),
    Or(Vec<LdapFilter>),
    Not(Box<LdapFilter>),
    Equality(String, String),
    Substring(String, LdapSubstringFilter),
    GreaterOrEqual(String, String),
    LessOrEqual(String, String),
    Present(String),
    Approx(String, String),
    Extensible(LdapMatchingRuleAssertion),
}

/// A decoded SearchRequest (what LLDAP uses of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SearchRequest {
    pub base: String,
    /// 0 base, 1 one level, 2 subtree, 3 children.
    pub scope: u8,
    pub filter: LdapFilter,
    pub attrs: Vec<String>,
}

fn utf8(bytes: &[u8]) -> Result<String, BerError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| BerError::Malformed("invalid UTF-8"))
}

fn is_constructed(tag: u8) -> bool {
    tag & 0x20 != 0
}

/// Two octet strings: an AttributeValueAssertion (`attr`, `value`).
fn assertion(t: Tlv<'_>) -> Result<(String, String), BerError> {
    let parts = children(t.value)?;
    match parts.as_slice() {
        [a, v, ..] if a.tag == 0x04 && !is_constructed(v.tag) && v.tag & 0xc0 == 0 => {
            Ok((utf8(a.value)?, utf8(v.value)?))
        }
        _ => Err(BerError::Malformed("invalid attribute value assertion")),
    }
}

fn parse_filter(t: Tlv<'_>, depth_remaining: usize) -> Result<LdapFilter, BerError> {
    let depth_remaining = depth_remaining.saturating_sub(1);
    if depth_remaining == 0 {
        return Err(BerError::Malformed("filter recursion limit reached"));
    }
    if t.tag & 0xc0 != 0x80 {
        return Err(BerError::Malformed("filter is not context-tagged"));
    }
    let sub = |t: Tlv<'_>| -> Result<Vec<LdapFilter>, BerError> {
        children(t.value)?
            .into_iter()
            .map(|c| parse_filter(c, depth_remaining))
            .collect()
    };
    Ok(match t.tag {
        0xa0 => LdapFilter::And(sub(t)?),
        0xa1 => LdapFilter::Or(sub(t)?),
        0xa2 => {
            // ldap3_proto takes the last element.
            let last = children(t.value)?
                .pop()
                .ok_or(BerError::Malformed("empty not filter"))?;
            LdapFilter::Not(Box::new(parse_filter(last, depth_remaining)?))
        }
        0xa3 => {
            let (a, v) = assertion(t)?;
            LdapFilter::Equality(a, v)
        }
        0xa4 => {
            let parts = children(t.value)?;
            let (Some(ty), Some(seq)) = (parts.first(), parts.get(1)) else {
                return Err(BerError::Malformed("invalid substring filter"));
            };
            if ty.tag != 0x04 || seq.tag != 0x30 {
                return Err(BerError::Malformed("invalid substring filter"));
            }
            let items = children(seq.value)?;
            let mut f = LdapSubstringFilter::default();
            let last = items.len().saturating_sub(1);
            for (i, item) in items.iter().enumerate() {
                match item.tag {
                    0x80 if i == 0 => f.initial = Some(utf8(item.value)?),
                    0x81 => f.any.push(utf8(item.value)?),
                    0x82 if i == last => f.final_ = Some(utf8(item.value)?),
                    _ => return Err(BerError::Malformed("invalid substring filter")),
                }
            }
            LdapFilter::Substring(utf8(ty.value)?, f)
        }
        0xa5 => {
            let (a, v) = assertion(t)?;
            LdapFilter::GreaterOrEqual(a, v)
        }
        0xa6 => {
            let (a, v) = assertion(t)?;
            LdapFilter::LessOrEqual(a, v)
        }
        0x87 => LdapFilter::Present(utf8(t.value)?),
        0xa8 => {
            let (a, v) = assertion(t)?;
            LdapFilter::Approx(a, v)
        }
        0xa9 => {
            let mut m = LdapMatchingRuleAssertion::default();
            for item in children(t.value)?.into_iter().take(4) {
                match item.tag {
                    0x81 => m.matching_rule = Some(utf8(item.value)?),
                    0x82 => m.type_ = Some(utf8(item.value)?),
                    0x83 => m.match_value = utf8(item.value)?,
                    0x84 => m.dn_attributes = item.value.first().is_some_and(|b| *b != 0),
                    _ => return Err(BerError::Malformed("invalid extensible match")),
                }
            }
            LdapFilter::Extensible(m)
        }
        _ => return Err(BerError::Malformed("unknown filter type")),
    })
}

/// Decodes the content of a SearchRequest (`[APPLICATION 3]`).
pub(crate) fn parse_search(content: &[u8]) -> Result<SearchRequest, BerError> {
    let parts = children(content)?;
    let [base, scope, aliases, size, time, types, filter, rest @ ..] = parts.as_slice() else {
        return Err(BerError::Malformed("SearchRequest has too few components"));
    };
    let prim = |t: &Tlv<'_>| t.tag & 0xe0 == 0;
    if base.tag != 0x04
        || !prim(scope)
        || aliases.tag != 0x0a
        || size.tag != 0x02
        || time.tag != 0x02
        || types.tag != 0x01
    {
        return Err(BerError::Malformed("malformed SearchRequest"));
    }
    let scope = match integer(scope.value)? {
        s @ 0..=3 => s as u8,
        _ => return Err(BerError::Malformed("unknown search scope")),
    };
    if !(0..=3).contains(&integer(aliases.value)?) {
        return Err(BerError::Malformed("unknown derefAliases"));
    }
    let filter = parse_filter(*filter, FILTER_MAX_DEPTH)?;
    let attrs = match rest.first() {
        None => Vec::new(),
        Some(list) => children(list.value)?
            .into_iter()
            .map(|a| utf8(a.value))
            .collect::<Result<_, _>>()?,
    };
    Ok(SearchRequest {
        base: utf8(base.value)?,
        scope,
        filter,
        attrs,
    })
}

// ---- DNs --------------------------------------------------------------------------------------

struct LdapError {
    code: u8,
    message: String,
}

fn ldap_error(code: u8, message: impl Into<String>) -> LdapError {
    LdapError {
        code,
        message: message.into(),
    }
}

/// LLDAP's `parse_distinguished_name` (input already lower-cased).
fn parse_distinguished_name(dn: &str) -> Result<Vec<(String, String)>, LdapError> {
    dn.split(',')
        .map(|rdn| {
            let mut it = rdn.split('=').map(str::trim);
            let k = it.next().unwrap_or_default();
            let v = it
                .next()
                .ok_or_else(|| ldap_error(INVALID_DN_SYNTAX, "Missing DN value"))?;
            if let Some(extra) = it.next() {
                return Err(ldap_error(
                    INVALID_DN_SYNTAX,
                    format!(r#"Too many elements in distinguished name: "{k}", "{v}", "{extra}""#),
                ));
            }
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}

fn is_subtree(subtree: &[(String, String)], base: &[(String, String)]) -> bool {
    subtree.len() >= base.len() && subtree[subtree.len() - base.len()..] == *base
}

enum Named {
    User(String),
    Group(String),
    Other,
}

/// `get_user_or_group_id_from_distinguished_name`.
fn user_or_group_from_dn(dn: &str, base: &[(String, String)]) -> Named {
    let Ok(parts) = parse_distinguished_name(dn) else {
        return Named::Other;
    };
    if is_subtree(&parts, base)
        && parts.len() == base.len() + 2
        && parts[1].0 == "ou"
        && (parts[0].0 == "cn" || parts[0].0 == "uid")
    {
        match parts[1].1.as_str() {
            "groups" => return Named::Group(parts[0].1.clone()),
            "people" => return Named::User(parts[0].1.clone()),
            _ => {}
        }
    }
    Named::Other
}

fn looks_like_dn(s: &str) -> bool {
    s.contains('=') || s.contains(',')
}

fn user_id_from_dn_or_name(s: &str, base: &[(String, String)]) -> Option<String> {
    if !looks_like_dn(s) {
        return Some(s.to_owned());
    }
    match user_or_group_from_dn(s, base) {
        Named::User(u) => Some(u),
        _ => None,
    }
}

fn group_name_from_dn_or_name(s: &str, base: &[(String, String)]) -> Option<String> {
    if !looks_like_dn(s) {
        return Some(s.to_owned());
    }
    match user_or_group_from_dn(s, base) {
        Named::Group(g) => Some(g),
        _ => None,
    }
}

// ---- field mapping ----------------------------------------------------------------------------

/// `map_user_field`.
enum UserField {
    NoMatch,
    ObjectClass,
    MemberOf,
    Dn,
    EntryDn,
    UserId,
    Email,
    DisplayName,
    Date(&'static str),
    Uuid,
    Attribute(String, AttributeType, bool),
}

fn map_user_field(field: &str, schema: &[AttributeSchema]) -> UserField {
    let attr = |name: &str, t| UserField::Attribute(name.to_owned(), t, false);
    match field {
        "memberof" | "ismemberof" => UserField::MemberOf,
        "objectclass" => UserField::ObjectClass,
        "dn" | "distinguishedname" => UserField::Dn,
        "entrydn" => UserField::EntryDn,
        "uid" | "user_id" | "id" => UserField::UserId,
        "mail" | "email" => UserField::Email,
        "cn" | "displayname" | "display_name" => UserField::DisplayName,
        "givenname" | "first_name" | "firstname" => attr("first_name", AttributeType::String),
        "sn" | "last_name" | "lastname" => attr("last_name", AttributeType::String),
        "avatar" | "jpegphoto" => attr("avatar", AttributeType::JpegPhoto),
        "creationdate" | "createtimestamp" | "creation_date" => UserField::Date("creation_date"),
        "modifytimestamp" | "modifydate" | "modified_date" => UserField::Date("modified_date"),
        "pwdchangedtime" | "passwordmodifydate" | "password_modified_date" => {
            UserField::Date("password_modified_date")
        }
        "entryuuid" | "uuid" => UserField::Uuid,
        _ => schema
            .iter()
            .find(|a| a.name == field)
            .map(|a| UserField::Attribute(a.name.clone(), a.attribute_type, a.is_list))
            .unwrap_or(UserField::NoMatch),
    }
}

/// `map_group_field`.
enum GroupField {
    NoMatch,
    GroupId,
    DisplayName,
    CreationDate,
    ModifiedDate,
    ObjectClass,
    Dn,
    EntryDn,
    Member,
    Uuid,
    Attribute(String, AttributeType, bool),
}

fn map_group_field(field: &str, schema: &[AttributeSchema]) -> GroupField {
    match field {
        "dn" | "distinguishedname" => GroupField::Dn,
        "entrydn" => GroupField::EntryDn,
        "objectclass" => GroupField::ObjectClass,
        "cn" | "displayname" | "uid" | "display_name" | "id" => GroupField::DisplayName,
        "creationdate" | "createtimestamp" | "creation_date" => GroupField::CreationDate,
        "modifytimestamp" | "modifydate" | "modified_date" => GroupField::ModifiedDate,
        "member" | "uniquemember" => GroupField::Member,
        "entryuuid" | "uuid" => GroupField::Uuid,
        "group_id" | "groupid" => GroupField::GroupId,
        _ => schema
            .iter()
            .find(|a| a.name == field)
            .map(|a| GroupField::Attribute(a.name.clone(), a.attribute_type, a.is_list))
            .unwrap_or(GroupField::NoMatch),
    }
}

/// How LLDAP's `Debug` of an `AttributeName` reads (in some error messages).
fn attribute_name_debug(name: &str) -> String {
    format!("AttributeName(CaseInsensitiveString({name:?}))")
}

// ---- filter translation -----------------------------------------------------------------------

/// What the search sees of the directory: base DN and the schema the searcher may see.
struct Ctx<'a> {
    st: &'a State,
    base: Vec<(String, String)>,
    base_str: String,
    user_schema: Vec<AttributeSchema>,
    group_schema: Vec<AttributeSchema>,
    /// Every user attribute (for value formatting, whatever the searcher may see).
    full_user_schema: Vec<AttributeSchema>,
    full_group_schema: Vec<AttributeSchema>,
}

/// `get_*_attribute_equality_filter`: the value and its lower-case form, normalized by type.
fn attribute_equality(
    name: &str,
    typ: AttributeType,
    is_list: bool,
    value: &str,
) -> Option<(String, String)> {
    let schema = AttributeSchema {
        name: name.to_owned(),
        attribute_type: typ,
        is_list,
        is_visible: true,
        is_editable: true,
        is_hardcoded: false,
        is_readonly: false,
    };
    let norm = |v: &str| {
        model::normalize_values(name, &[v.to_owned()], &schema)
            .ok()
            .and_then(|v| v.into_iter().next())
    };
    Some((norm(value)?, norm(&value.to_ascii_lowercase())?))
}

fn object_class_matches(defaults: &[&str], extra: &[String], value_lc: &str) -> bool {
    defaults.iter().any(|c| c.eq_ignore_ascii_case(value_lc))
        || extra.iter().any(|c| c.eq_ignore_ascii_case(value_lc))
}

/// LLDAP's and/or simplification: drop the neutral element, flatten nested lists, unwrap one.
fn combine<F>(
    children: Vec<Result<F, LdapError>>,
    neutral: &F,
    flatten: impl Fn(F) -> Result<Vec<F>, F>,
    make: impl Fn(Vec<F>) -> F,
) -> Result<F, LdapError>
where
    F: PartialEq + Clone,
{
    let mut out = Vec::new();
    for c in children {
        let c = c?;
        if &c == neutral {
            continue;
        }
        match flatten(c) {
            Ok(v) => out.extend(v),
            Err(c) => out.push(c),
        }
    }
    Ok(match out.len() {
        0 => neutral.clone(),
        1 => out.remove(0),
        _ => make(out),
    })
}

fn convert_user_filter(cx: &Ctx<'_>, f: &LdapFilter) -> Result<UserFilter, LdapError> {
    let rec = |f: &LdapFilter| convert_user_filter(cx, f);
    match f {
        LdapFilter::And(fs) => combine(
            fs.iter().map(rec).collect(),
            &UserFilter::True,
            |f| match f {
                UserFilter::And(v) => Ok(v),
                f => Err(f),
            },
            UserFilter::And,
        ),
        LdapFilter::Or(fs) => {
            let or = combine(
                fs.iter().map(rec).collect(),
                &UserFilter::False,
                |f| match f {
                    UserFilter::Or(v) => Ok(v),
                    f => Err(f),
                },
                UserFilter::Or,
            )?;
            Ok(or)
        }
        LdapFilter::Not(f) => Ok(match rec(f)? {
            UserFilter::True => UserFilter::False,
            UserFilter::False => UserFilter::True,
            f => UserFilter::Not(Box::new(f)),
        }),
        LdapFilter::Equality(field, value) => {
            let field = field.to_ascii_lowercase();
            let value_lc = value.to_ascii_lowercase();
            Ok(match map_user_field(&field, &cx.user_schema) {
                UserField::UserId => UserFilter::UserId(value_lc),
                UserField::Email => UserFilter::Email(value_lc),
                UserField::DisplayName => {
                    if *value == value_lc {
                        UserFilter::DisplayName(value_lc)
                    } else {
                        UserFilter::Or(vec![
                            UserFilter::DisplayName(value.clone()),
                            UserFilter::DisplayName(value_lc),
                        ])
                    }
                }
                // The column holds a SQL date-time, never equal to the text given.
                UserField::Date(col) => UserFilter::Date(col, i64::MIN),
                UserField::Uuid => UserFilter::Uuid(value_lc),
                UserField::Attribute(name, typ, is_list) => {
                    match attribute_equality(&name, typ, is_list, value) {
                        Some((v, v_lc)) => UserFilter::Or(vec![
                            UserFilter::Attribute(name.clone(), v),
                            UserFilter::Attribute(name, v_lc),
                        ]),
                        None => UserFilter::False,
                    }
                }
                UserField::NoMatch => UserFilter::False,
                UserField::ObjectClass => {
                    let (_, extra) = cx.st.object_classes(Kind::User);
                    if object_class_matches(DEFAULT_USER_OBJECT_CLASSES, &extra, &value_lc) {
                        UserFilter::True
                    } else {
                        UserFilter::False
                    }
                }
                UserField::MemberOf => match group_name_from_dn_or_name(&value_lc, &cx.base) {
                    Some(g) => UserFilter::MemberOf(g),
                    None => UserFilter::False,
                },
                UserField::Dn | UserField::EntryDn => {
                    match user_id_from_dn_or_name(&value_lc, &cx.base) {
                        Some(u) => UserFilter::UserId(u),
                        None => UserFilter::False,
                    }
                }
            })
        }
        LdapFilter::Present(field) => {
            let field = field.to_ascii_lowercase();
            Ok(match map_user_field(&field, &cx.user_schema) {
                UserField::Attribute(name, ..) => UserFilter::AttributePresent(name),
                UserField::NoMatch => UserFilter::False,
                _ => UserFilter::True,
            })
        }
        LdapFilter::Substring(field, sub) => {
            let lower = field.to_ascii_lowercase();
            match map_user_field(&lower, &cx.user_schema) {
                UserField::UserId => Ok(UserFilter::UserIdLike(sub.to_sql_filter())),
                UserField::Attribute(..)
                | UserField::ObjectClass
                | UserField::MemberOf
                | UserField::Dn
                | UserField::EntryDn
                | UserField::Date("creation_date")
                | UserField::Uuid => Err(ldap_error(
                    UNWILLING_TO_PERFORM,
                    format!(
                        "Unsupported user attribute for substring filter: {}",
                        attribute_name_debug(&lower)
                    ),
                )),
                UserField::NoMatch => Ok(UserFilter::False),
                UserField::Email => Ok(UserFilter::Like("mail", sub.to_sql_filter())),
                UserField::DisplayName => Ok(UserFilter::Like("display_name", sub.to_sql_filter())),
                // `lower(<date column>) LIKE …`: the double keeps no SQL text of dates.
                UserField::Date(_) => Ok(UserFilter::Like("date", sub.to_sql_filter())),
            }
        }
        other => Err(ldap_error(
            UNWILLING_TO_PERFORM,
            format!("Unsupported user filter: {other:?}"),
        )),
    }
}

fn convert_group_filter(cx: &Ctx<'_>, f: &LdapFilter) -> Result<GroupFilter, LdapError> {
    let rec = |f: &LdapFilter| convert_group_filter(cx, f);
    match f {
        LdapFilter::Equality(field, value) => {
            let field = field.to_ascii_lowercase();
            let value_lc = value.to_ascii_lowercase();
            match map_group_field(&field, &cx.group_schema) {
                GroupField::GroupId => Ok(value_lc
                    .parse::<i32>()
                    .map(GroupFilter::GroupId)
                    .unwrap_or(GroupFilter::False)),
                GroupField::DisplayName => Ok(GroupFilter::DisplayName(value_lc)),
                GroupField::Uuid => {
                    if is_uuid(&value_lc) {
                        Ok(GroupFilter::Uuid(value_lc))
                    } else {
                        Err(ldap_error(OTHER, format!("Invalid UUID: {value_lc}")))
                    }
                }
                GroupField::Member => Ok(match user_id_from_dn_or_name(&value_lc, &cx.base) {
                    Some(u) => GroupFilter::Member(u),
                    None => GroupFilter::False,
                }),
                GroupField::ObjectClass => {
                    let (_, extra) = cx.st.object_classes(Kind::Group);
                    Ok(
                        if object_class_matches(DEFAULT_GROUP_OBJECT_CLASSES, &extra, &value_lc) {
                            GroupFilter::True
                        } else {
                            GroupFilter::False
                        },
                    )
                }
                GroupField::Dn | GroupField::EntryDn => {
                    Ok(match group_name_from_dn_or_name(&value_lc, &cx.base) {
                        Some(g) => GroupFilter::DisplayName(g),
                        None => GroupFilter::False,
                    })
                }
                GroupField::NoMatch => Ok(GroupFilter::False),
                GroupField::Attribute(name, typ, is_list) => {
                    Ok(match attribute_equality(&name, typ, is_list, value) {
                        Some((v, v_lc)) => GroupFilter::Or(vec![
                            GroupFilter::Attribute(name.clone(), v),
                            GroupFilter::Attribute(name, v_lc),
                        ]),
                        None => GroupFilter::False,
                    })
                }
                GroupField::CreationDate => Err(ldap_error(
                    UNWILLING_TO_PERFORM,
                    "Creation date filter for groups not supported",
                )),
                GroupField::ModifiedDate => Err(ldap_error(
                    UNWILLING_TO_PERFORM,
                    "Modified date filter for groups not supported",
                )),
            }
        }
        LdapFilter::And(fs) => combine(
            fs.iter().map(rec).collect(),
            &GroupFilter::True,
            |f| match f {
                GroupFilter::And(v) => Ok(v),
                f => Err(f),
            },
            GroupFilter::And,
        ),
        LdapFilter::Or(fs) => combine(
            fs.iter().map(rec).collect(),
            &GroupFilter::False,
            |f| match f {
                GroupFilter::Or(v) => Ok(v),
                f => Err(f),
            },
            GroupFilter::Or,
        ),
        LdapFilter::Not(f) => Ok(match rec(f)? {
            GroupFilter::True => GroupFilter::False,
            GroupFilter::False => GroupFilter::True,
            f => GroupFilter::Not(Box::new(f)),
        }),
        LdapFilter::Present(field) => {
            let field = field.to_ascii_lowercase();
            Ok(match map_group_field(&field, &cx.group_schema) {
                GroupField::Attribute(name, ..) => GroupFilter::AttributePresent(name),
                GroupField::NoMatch => GroupFilter::False,
                _ => GroupFilter::True,
            })
        }
        LdapFilter::Substring(field, sub) => {
            let lower = field.to_ascii_lowercase();
            match map_group_field(&lower, &cx.group_schema) {
                GroupField::DisplayName => Ok(GroupFilter::DisplayNameLike(sub.to_sql_filter())),
                GroupField::NoMatch => Ok(GroupFilter::False),
                _ => Err(ldap_error(
                    UNWILLING_TO_PERFORM,
                    format!(r#"Unsupported group attribute for substring filter: "{lower}""#),
                )),
            }
        }
        other => Err(ldap_error(
            UNWILLING_TO_PERFORM,
            format!("Unsupported group filter: {other:?}"),
        )),
    }
}

fn is_uuid(s: &str) -> bool {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

// ---- entries ----------------------------------------------------------------------------------

/// One SearchResultEntry.
struct Entry {
    dn: String,
    attributes: Vec<(String, Vec<Vec<u8>>)>,
}

/// `expand_attribute_wildcards`: lower-case name → the spelling to answer with.
struct Expanded {
    keys: std::collections::BTreeMap<String, String>,
    include_custom: bool,
}

fn expand(requested: &[String], all: &[&str]) -> Expanded {
    let mut keys: std::collections::BTreeMap<String, String> = requested
        .iter()
        .filter(|s| !matches!(s.as_str(), "*" | "+" | "1.1"))
        .map(|s| (s.to_ascii_lowercase(), s.clone()))
        .collect();
    let include_custom = requested.is_empty() || requested.iter().any(|s| s == "*");
    if include_custom {
        keys.extend(
            all.iter()
                .map(|s| (s.to_ascii_lowercase(), (*s).to_owned())),
        );
    }
    Expanded {
        keys,
        include_custom,
    }
}

/// A stored attribute as LDAP sends it (`get_custom_attribute`).
fn custom_values(
    stored: &std::collections::BTreeMap<String, Vec<String>>,
    name: &str,
    schema: &[AttributeSchema],
) -> Option<Vec<Vec<u8>>> {
    let values = stored.get(name)?;
    let typ = schema
        .iter()
        .find(|a| a.name == name)
        .map_or(AttributeType::String, |a| a.attribute_type);
    Some(
        values
            .iter()
            .map(|v| match typ {
                AttributeType::String | AttributeType::Integer => v.clone().into_bytes(),
                AttributeType::JpegPhoto => base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .unwrap_or_else(|_| v.clone().into_bytes()),
                AttributeType::DateTime => time::parse_rfc3339(v)
                    .map(time::format_generalized)
                    .unwrap_or_else(|| v.clone())
                    .into_bytes(),
            })
            .collect(),
    )
}

fn generalized(micros: i64) -> Vec<Vec<u8>> {
    vec![time::format_generalized(micros).into_bytes()]
}

fn user_attribute(cx: &Ctx<'_>, u: &User, name: &str) -> Option<Vec<Vec<u8>>> {
    let values = match map_user_field(name, &cx.user_schema) {
        UserField::ObjectClass => {
            let (defaults, extra) = cx.st.object_classes(Kind::User);
            defaults
                .iter()
                .map(|c| c.as_bytes().to_vec())
                .chain(extra.into_iter().map(String::into_bytes))
                .collect()
        }
        UserField::Dn => return None,
        UserField::EntryDn => vec![format!("uid={},ou=people,{}", u.id, cx.base_str).into_bytes()],
        UserField::MemberOf => cx
            .st
            .groups_of(&u.id)
            .into_iter()
            .map(|g| format!("cn={},ou=groups,{}", g.display_name, cx.base_str).into_bytes())
            .collect(),
        UserField::UserId => vec![u.id.clone().into_bytes()],
        UserField::Email => vec![u.email.clone().into_bytes()],
        UserField::Uuid => vec![u.uuid.clone().into_bytes()],
        UserField::DisplayName => vec![u.display_name.clone()?.into_bytes()],
        UserField::Date("creation_date") => generalized(u.creation_date),
        UserField::Date("modified_date") => generalized(u.modified_date),
        UserField::Date(_) => generalized(u.password_modified_date),
        UserField::Attribute(attr, ..) => {
            custom_values(&u.attributes, &attr, &cx.full_user_schema)?
        }
        UserField::NoMatch => match name {
            "1.1" | "+" => return None,
            _ => custom_values(&u.attributes, name, &cx.full_user_schema)?,
        },
    };
    if values.len() == 1 && values[0].is_empty() {
        None
    } else {
        Some(values)
    }
}

fn group_attribute(
    cx: &Ctx<'_>,
    g: &Group,
    name: &str,
    only_member: Option<&str>,
) -> Option<Vec<Vec<u8>>> {
    let values = match map_group_field(name, &cx.group_schema) {
        GroupField::ObjectClass => {
            let (defaults, extra) = cx.st.object_classes(Kind::Group);
            defaults
                .iter()
                .map(|c| c.as_bytes().to_vec())
                .chain(extra.into_iter().map(String::into_bytes))
                .collect()
        }
        GroupField::Dn => return None,
        // LLDAP's spelling (`uid=`, not `cn=`).
        GroupField::EntryDn => {
            vec![format!("uid={},ou=groups,{}", g.display_name, cx.base_str).into_bytes()]
        }
        GroupField::GroupId => vec![g.id.to_string().into_bytes()],
        GroupField::DisplayName => vec![g.display_name.clone().into_bytes()],
        GroupField::CreationDate => vec![time::format_rfc3339_offset(g.creation_date).into_bytes()],
        GroupField::ModifiedDate => vec![time::format_rfc3339_offset(g.modified_date).into_bytes()],
        GroupField::Member => cx
            .st
            .members_of(g.id)
            .into_iter()
            .filter(|u| only_member.is_none_or(|m| m == u.id))
            .map(|u| format!("uid={},ou=people,{}", u.id, cx.base_str).into_bytes())
            .collect(),
        GroupField::Uuid => vec![g.uuid.clone().into_bytes()],
        GroupField::Attribute(attr, ..) => {
            custom_values(&g.attributes, &attr, &cx.full_group_schema)?
        }
        GroupField::NoMatch => match name {
            "1.1" | "+" => return None,
            _ => custom_values(&g.attributes, name, &cx.full_group_schema)?,
        },
    };
    if values.len() == 1 && values[0].is_empty() {
        None
    } else {
        Some(values)
    }
}

fn user_entry(cx: &Ctx<'_>, u: &User, requested: &[String]) -> Entry {
    let mut ex = expand(requested, ALL_USER_ATTRIBUTE_KEYS);
    if ex.include_custom {
        ex.keys
            .extend(u.attributes.keys().map(|k| (k.clone(), k.clone())));
    }
    Entry {
        dn: format!("uid={},ou=people,{}", u.id, cx.base_str),
        attributes: ex
            .keys
            .into_iter()
            .filter_map(|(name, spelling)| Some((spelling, user_attribute(cx, u, &name)?)))
            .collect(),
    }
}

fn group_entry(cx: &Ctx<'_>, g: &Group, requested: &[String], only_member: Option<&str>) -> Entry {
    let mut ex = expand(requested, ALL_GROUP_ATTRIBUTE_KEYS);
    if ex.include_custom {
        ex.keys
            .extend(g.attributes.keys().map(|k| (k.clone(), k.clone())));
    }
    Entry {
        dn: format!("cn={},ou=groups,{}", g.display_name, cx.base_str),
        attributes: ex
            .keys
            .into_iter()
            .filter_map(|(name, spelling)| {
                Some((spelling, group_attribute(cx, g, &name, only_member)?))
            })
            .collect(),
    }
}

// ---- the search -------------------------------------------------------------------------------

/// Who is bound on the connection (LLDAP computes the permission at bind time).
#[derive(Debug, Clone)]
pub(crate) struct Bound {
    pub user: String,
    /// Admin, password manager or strict read-only: no restriction on what a search sees.
    pub can_read_all: bool,
}

enum Scope {
    Global,
    Users,
    Groups,
    User(LdapFilter),
    Group(LdapFilter),
    OuOnly,
    Empty,
}

fn search_scope(base: &[(String, String)], dn: &[(String, String)], scope: u8) -> Scope {
    let n = base.len();
    let is = |i: usize, ou: &str| dn[i].0 == "ou" && dn[i].1 == ou;
    if !is_subtree(dn, base) {
        Scope::Empty
    } else if dn.len() == n {
        Scope::Global
    } else if dn.len() == n + 1 && is(0, "people") {
        if scope == 0 {
            Scope::OuOnly
        } else {
            Scope::Users
        }
    } else if dn.len() == n + 1 && is(0, "groups") {
        if scope == 0 {
            Scope::OuOnly
        } else {
            Scope::Groups
        }
    } else if dn.len() == n + 2 && is(1, "people") {
        Scope::User(LdapFilter::Equality(dn[0].0.clone(), dn[0].1.clone()))
    } else if dn.len() == n + 2 && is(1, "groups") {
        Scope::Group(LdapFilter::Equality(dn[0].0.clone(), dn[0].1.clone()))
    } else {
        Scope::Empty
    }
}

/// The entries and the outcome of one search (before encoding).
struct Outcome {
    entries: Vec<Entry>,
    /// Rows of each user list evaluated.
    user_lists: Vec<u64>,
}

fn list_users<'s>(
    cx: &Ctx<'s>,
    bound: &Bound,
    filter: &LdapFilter,
    base: &str,
    user_lists: &mut Vec<u64>,
) -> Result<Vec<&'s User>, LdapError> {
    let mut f = convert_user_filter(cx, filter)?;
    if !bound.can_read_all {
        f = UserFilter::And(vec![f, UserFilter::UserId(bound.user.clone())]);
    }
    sql::check_user_list(&f).map_err(|e| {
        ldap_error(
            OTHER,
            format!(r#"Error while searching user "{base}": {e}"#),
        )
    })?;
    let users = cx.st.list_users(&f);
    user_lists.push(users.len() as u64);
    Ok(users)
}

fn list_groups<'s>(
    cx: &Ctx<'s>,
    bound: &Bound,
    filter: &LdapFilter,
    base: &str,
) -> Result<Vec<&'s Group>, LdapError> {
    let mut f = convert_group_filter(cx, filter)?;
    if !bound.can_read_all {
        f = GroupFilter::And(vec![f, GroupFilter::Member(bound.user.clone())]);
    }
    sql::check_group_list(&f).map_err(|e| {
        ldap_error(
            OTHER,
            format!(r#"Error while listing groups "{base}": {e}"#),
        )
    })?;
    Ok(cx.st.list_groups(&f))
}

fn do_search(cx: &Ctx<'_>, bound: &Bound, req: &SearchRequest) -> Result<Outcome, LdapError> {
    let dn = parse_distinguished_name(&req.base.to_ascii_lowercase())?;
    let mut user_lists = Vec::new();
    let only_member = (!bound.can_read_all).then_some(bound.user.as_str());
    let entries = |users: Vec<&User>, groups: Vec<&Group>| -> Vec<Entry> {
        users
            .into_iter()
            .map(|u| user_entry(cx, u, &req.attrs))
            .chain(
                groups
                    .into_iter()
                    .map(|g| group_entry(cx, g, &req.attrs, only_member)),
            )
            .collect()
    };
    let entries = match search_scope(&cx.base, &dn, req.scope) {
        Scope::Global => {
            let users = list_users(cx, bound, &req.filter, &req.base, &mut user_lists);
            let groups = list_groups(cx, bound, &req.filter, &req.base);
            match (users, groups) {
                (Err(e), Err(_)) => return Err(e),
                (Ok(u), Err(e)) => {
                    tracing::debug!(error = %e.message, "lldap double: error while getting groups");
                    entries(u, Vec::new())
                }
                (Err(e), Ok(g)) => {
                    tracing::debug!(error = %e.message, "lldap double: error while getting users");
                    entries(Vec::new(), g)
                }
                (Ok(u), Ok(g)) => entries(u, g),
            }
        }
        Scope::Users => entries(
            list_users(cx, bound, &req.filter, &req.base, &mut user_lists)?,
            Vec::new(),
        ),
        Scope::Groups => entries(Vec::new(), list_groups(cx, bound, &req.filter, &req.base)?),
        Scope::User(extra) => {
            let f = LdapFilter::And(vec![req.filter.clone(), extra]);
            entries(
                list_users(cx, bound, &f, &req.base, &mut user_lists)?,
                Vec::new(),
            )
        }
        Scope::Group(extra) => {
            let f = LdapFilter::And(vec![req.filter.clone(), extra]);
            entries(Vec::new(), list_groups(cx, bound, &f, &req.base)?)
        }
        Scope::OuOnly => vec![Entry {
            dn: req.base.clone(),
            attributes: vec![(
                "objectClass".to_owned(),
                vec![b"top".to_vec(), b"organizationalUnit".to_vec()],
            )],
        }],
        Scope::Empty => {
            tracing::debug!(base = %req.base, "lldap double: search base outside the tree");
            Vec::new()
        }
    };
    if entries.is_empty() && req.scope == 0 {
        return Err(ldap_error(NO_SUCH_OBJECT, ""));
    }
    Ok(Outcome {
        entries,
        user_lists,
    })
}

fn root_dse(base_dn: &str) -> Entry {
    let one = |s: &str| vec![s.as_bytes().to_vec()];
    Entry {
        dn: String::new(),
        attributes: vec![
            ("objectClass".into(), one("top")),
            ("vendorName".into(), one("LLDAP")),
            ("vendorVersion".into(), one("lldap_0.6.3")),
            ("supportedLDAPVersion".into(), one("3")),
            (
                "supportedExtension".into(),
                vec![
                    super::ldap::OID_PASSWORD_MODIFY.as_bytes().to_vec(),
                    super::ldap::OID_WHOAMI.as_bytes().to_vec(),
                ],
            ),
            ("supportedControl".into(), Vec::new()),
            ("supportedFeatures".into(), one("1.3.6.1.4.1.4203.1.5.1")),
            ("defaultNamingContext".into(), one(base_dn)),
            ("namingContexts".into(), one(base_dn)),
            ("isGlobalCatalogReady".into(), one("false")),
            ("subschemaSubentry".into(), one("cn=Subschema")),
        ],
    }
}

fn encode_entry(id: i64, e: &Entry) -> Vec<u8> {
    let mut attrs = Vec::new();
    for (name, values) in &e.attributes {
        let mut vals = Vec::new();
        for v in values {
            vals.extend(encode(0x04, v));
        }
        let mut a = encode(0x04, name.as_bytes());
        a.extend(encode(0x31, &vals));
        attrs.extend(encode(0x30, &a));
    }
    let mut c = encode(0x04, e.dn.as_bytes());
    c.extend(encode(0x30, &attrs));
    envelope(id, encode(0x64, &c))
}

/// SearchResultDone with LLDAP's Simple Paged Results control (`size`: entries sent).
fn encode_done(id: i64, code: u8, message: &str, size: usize) -> Vec<u8> {
    let mut value = encode_int(0x02, i64::try_from(size).unwrap_or(i64::MAX));
    value.extend(encode(0x04, b""));
    let mut control = encode(0x04, OID_PAGED_RESULTS.as_bytes());
    control.extend(encode(0x04, &encode(0x30, &value)));
    let controls = encode(0xa0, &encode(0x30, &control));
    let mut msg = encode_int(0x02, id);
    msg.extend(encode(0x65, &ldap_result(code, message)));
    msg.extend(controls);
    encode(0x30, &msg)
}

fn answer(id: i64, entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend(encode_entry(id, e));
    }
    out.extend(encode_done(id, SUCCESS, "", entries.len()));
    out
}

/// Answers one SearchRequest: every message (entries, then SearchResultDone), encoded.
pub(crate) fn search(
    shared: &Shared,
    bound: Option<&Bound>,
    id: i64,
    req: &SearchRequest,
) -> Vec<u8> {
    Stats::bump(&mut lock(&shared.stats).ldap, "search");
    let fail = |code: u8, message: &str| {
        Stats::bump(&mut lock(&shared.stats).ldap, "search_failed");
        tracing::debug!(code, message, "lldap double: search refused");
        encode_done(id, code, message, 0)
    };
    let base_parts = match parse_distinguished_name(&shared.base_dn.to_ascii_lowercase()) {
        Ok(p) => p,
        Err(e) => return fail(e.code, &e.message),
    };
    let base_str = base_parts
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let root_dse_request = req.base.is_empty()
        && req.scope == 0
        && matches!(&req.filter, LdapFilter::Present(a) if a.eq_ignore_ascii_case("objectclass"));
    if root_dse_request {
        Stats::bump(&mut lock(&shared.stats).ldap, "search_ok");
        return answer(id, &[root_dse(&base_str)]);
    }
    let Some(bound) = bound else {
        return fail(INSUFFICIENT_ACCESS_RIGHTS, "No user currently bound");
    };
    let st = lock(&shared.state);
    let full_user_schema = st.public_schema(Kind::User);
    let full_group_schema = st.public_schema(Kind::Group);
    // An unprivileged searcher only sees the visible attributes.
    let visible = |s: &[AttributeSchema]| -> Vec<AttributeSchema> {
        s.iter()
            .filter(|a| bound.can_read_all || a.is_visible)
            .cloned()
            .collect()
    };
    let cx = Ctx {
        st: &st,
        base: base_parts,
        base_str,
        user_schema: visible(&full_user_schema),
        group_schema: visible(&full_group_schema),
        full_user_schema,
        full_group_schema,
    };
    match do_search(&cx, bound, req) {
        Ok(outcome) => {
            let bytes = answer(id, &outcome.entries);
            drop(cx);
            drop(st);
            let mut stats = lock(&shared.stats);
            Stats::bump(&mut stats.ldap, "search_ok");
            *stats.ldap.entry("search_entries".into()).or_default() += outcome.entries.len() as u64;
            for rows in outcome.user_lists {
                stats.user_lists.record(rows);
            }
            bytes
        }
        Err(e) => {
            drop(cx);
            drop(st);
            fail(e.code, &e.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(bytes: &[u8]) -> Tlv<'_> {
        super::super::ldap::read_tlv(bytes).unwrap().unwrap().0
    }

    #[test]
    fn filters_decode_like_ldap3_proto() {
        // (&(objectClass=person)(uid=ab*)(mail=*))
        let eq = {
            let mut c = encode(0x04, b"objectClass");
            c.extend(encode(0x04, b"person"));
            encode(0xa3, &c)
        };
        let sub = {
            let mut c = encode(0x04, b"uid");
            c.extend(encode(0x30, &encode(0x80, b"ab")));
            encode(0xa4, &c)
        };
        let present = encode(0x87, b"mail");
        let mut and = eq;
        and.extend(sub);
        and.extend(present);
        let and = encode(0xa0, &and);
        let f = parse_filter(tlv(&and), FILTER_MAX_DEPTH).unwrap();
        assert_eq!(
            f,
            LdapFilter::And(vec![
                LdapFilter::Equality("objectClass".into(), "person".into()),
                LdapFilter::Substring(
                    "uid".into(),
                    LdapSubstringFilter {
                        initial: Some("ab".into()),
                        ..Default::default()
                    }
                ),
                LdapFilter::Present("mail".into()),
            ])
        );
        // Too deep a nesting is not decoded (ldap3_proto's limit).
        let mut deep = encode(0x87, b"uid");
        for _ in 0..FILTER_MAX_DEPTH {
            deep = encode(0xa2, &deep);
        }
        assert!(parse_filter(tlv(&deep), FILTER_MAX_DEPTH).is_err());
    }

    #[test]
    fn substring_patterns_and_like() {
        let f = LdapSubstringFilter {
            initial: Some("Ab".into()),
            any: vec!["c".into()],
            final_: Some("Z".into()),
        };
        assert_eq!(f.to_sql_filter(), "ab%c%z");
        assert!(model::sql_like("abxcyz", "ab%c%z"));
        assert!(model::sql_like("ABC", "a_c"));
        assert!(!model::sql_like("abd", "ab%c%z"));
        assert!(model::sql_like("seed_1", "seed%"));
        assert!(model::sql_like("seedx1", "seed_1"));
    }

    #[test]
    fn distinguished_names() {
        let base = parse_distinguished_name("dc=example,dc=com").ok().unwrap();
        assert!(matches!(
            user_or_group_from_dn("uid=bob,ou=people,dc=example,dc=com", &base),
            Named::User(u) if u == "bob"
        ));
        assert!(matches!(
            user_or_group_from_dn("cn=devs,ou=groups,dc=example,dc=com", &base),
            Named::Group(g) if g == "devs"
        ));
        assert_eq!(
            group_name_from_dn_or_name("devs", &base).as_deref(),
            Some("devs")
        );
        assert!(group_name_from_dn_or_name("cn=devs,ou=people,dc=example,dc=com", &base).is_none());
        let e = parse_distinguished_name("a=b=c").err().unwrap();
        assert_eq!(e.code, INVALID_DN_SYNTAX);
        assert!(parse_distinguished_name("").is_err());
    }
}
