//! Nextcloud's wire format: the OCS envelope and the bodies paasd sends and reads.

use serde::{Deserialize, Serialize};

use super::super::accounts::Scalar;
use crate::http::Response;

/// OCS success codes (100 in v1, 200 in v2).
pub(super) fn ok_code(code: u64) -> bool {
    code == 100 || code == 200
}

/// The OCS envelope of every answer: `{"ocs": {"meta": {…}, "data": …}}`.
#[derive(Debug, Deserialize)]
pub(super) struct Ocs<T> {
    pub(super) ocs: OcsBody<T>,
}

#[derive(Debug, Deserialize)]
pub(super) struct OcsBody<T> {
    pub(super) meta: OcsMeta,
    /// Absent or `null` in some failures; failures usually say `[]` (PHP's empty array), which
    /// the data types here read as their defaults.
    #[serde(default = "Option::default")]
    pub(super) data: Option<T>,
}

#[derive(Debug, Deserialize)]
pub(super) struct OcsMeta {
    #[serde(default)]
    pub(super) statuscode: u64,
    #[serde(default)]
    pub(super) message: Option<String>,
}

/// `data` of `POST /cloud/users`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Created {
    #[serde(default)]
    pub(super) id: Option<String>,
}

/// `data` of `GET /cloud/users/details`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct UsersDetails {
    #[serde(default)]
    pub(super) users: DetailsMap,
}

/// `users` of `cloud/users/details`, in the server's order: an object uid → details, but PHP
/// renders an empty map as `[]` and a map of numeric ids may become a list (whose entries
/// name their `id`; entries without one are skipped). `null` is no users.
#[derive(Debug, Default)]
pub(super) struct DetailsMap(pub(super) Vec<(String, UserDetails)>);

impl<'de> Deserialize<'de> for DetailsMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = DetailsMap;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of user ids to details, or a list of details")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<DetailsMap, A::Error> {
                let mut out = Vec::new();
                while let Some((uid, d)) = m.next_entry::<String, UserDetails>()? {
                    out.push((uid, d));
                }
                Ok(DetailsMap(out))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<DetailsMap, A::Error> {
                let mut out = Vec::new();
                while let Some(d) = s.next_element::<UserDetails>()? {
                    if let Some(id) = d.id.clone() {
                        out.push((id, d));
                    }
                }
                Ok(DetailsMap(out))
            }
            fn visit_unit<E>(self) -> Result<DetailsMap, E> {
                Ok(DetailsMap::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// One user's details (`UserDetails`, or only `{id}` for a user Nextcloud could not load). Of
/// the many fields, the managed ones.
#[derive(Debug, Default, Deserialize)]
pub(super) struct UserDetails {
    #[serde(default)]
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) enabled: Option<bool>,
    #[serde(default)]
    pub(super) displayname: Option<String>,
    #[serde(default, rename = "display-name")]
    pub(super) display_name: Option<String>,
    #[serde(default)]
    pub(super) email: Option<String>,
    #[serde(default)]
    pub(super) quota: Option<QuotaInfo>,
    #[serde(default)]
    pub(super) groups: Option<Vec<String>>,
}

/// `quota` of the details: `{quota, used, free, total, relative}`, only `{quota, used}` for users
/// whose storage is not set up yet.
#[derive(Debug, Default, Deserialize)]
pub(super) struct QuotaInfo {
    #[serde(default)]
    pub(super) quota: Option<Scalar>,
}

/// `status.php` (not an OCS call).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Status {
    #[serde(default)]
    pub(super) installed: Option<bool>,
    #[serde(default)]
    pub(super) maintenance: Option<bool>,
    #[serde(default)]
    pub(super) needs_db_upgrade: Option<bool>,
}

/// `POST /cloud/groups` and `POST /cloud/users/{userId}/groups`.
#[derive(Serialize)]
pub(super) struct GroupId<'a> {
    pub(super) groupid: &'a str,
}

/// `POST /cloud/users`.
#[derive(Serialize)]
pub(super) struct NewUser<'a> {
    pub(super) userid: &'a str,
    #[serde(rename = "displayName", skip_serializing_if = "Option::is_none")]
    pub(super) display_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) quota: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) groups: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) password: Option<&'a str>,
}

/// `PUT /cloud/users/{userId}`: one field.
#[derive(Serialize)]
pub(super) struct EditUser<'a> {
    pub(super) key: &'a str,
    pub(super) value: &'a str,
}

/// One OCS answer: the envelope's code and message, and `data` as `T` when it reads as `T`.
#[derive(Debug)]
pub(super) struct Reply<T> {
    pub(super) response: Response,
    pub(super) code: u64,
    pub(super) message: String,
    pub(super) data: Option<T>,
    pub(super) attempts: u32,
}

impl<T> Reply<T> {
    pub(super) fn ok(&self) -> bool {
        ok_code(self.code)
    }

    pub(super) fn status(&self) -> u16 {
        self.response.status
    }
}
