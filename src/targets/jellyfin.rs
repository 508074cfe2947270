//! Jellyfin through its REST API with an API key (`Authorization: MediaBrowser Token="…"`; the
//! legacy `X-Emby-Token` header is off by default in current servers and is not used).
//!
//! Managed: the account (name = paasd user id), password, and the policy flags admin
//! (`IsAdministrator`), library access (`EnableAllFolders`) and disabled (`IsDisabled`).
//! Jellyfin has no e-mail or display name and no place for a marker (`Mark` does nothing).
//!
//! Policy changes read the user, change the flags in the full policy and post it back (the API
//! takes only the whole object). Jellyfin refuses to disable an administrator, so a disabled
//! user is not an administrator: disabling drops the flag first, and the desired account of a
//! disabled user says `admin = false`.
//!
//! An account created without a password source gets a random password nobody knows (Jellyfin
//! would otherwise accept an empty password).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt as _;
use reqwest::Method;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};

use super::accounts::{
    flag, refused, Account, AccountAction, DesiredAccount, Executed, Service, ServiceError,
    ServiceUser, NO_BODY,
};
use crate::backoff::Backoff;
use crate::core::id::ServiceKind;
use crate::http::{seg, Http, Json};
use crate::secret::{generate_password, Secret};

pub struct Jellyfin {
    http: Http,
    key: Secret,
}

/// A `UserDto` (`GET /Users`, `GET /Users/{id}`, the answer to `POST /Users/New`): of its fields,
/// those paasd reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UserDto {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    policy: Option<UserPolicy>,
}

/// A `UserPolicy`: the flags paasd manages, typed, and every other property as the server sent
/// it. Jellyfin takes only the whole policy back (`POST /Users/{id}/Policy`; the document
/// requires the provider ids and allows no other properties than its own), so what paasd does
/// not manage must go back unchanged — kept as a map rather than typed, since a struct of
/// today's properties would drop (or reset to defaults) those of a newer server.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct UserPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    is_administrator: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    is_disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enable_all_folders: Option<bool>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

/// A policy flag paasd manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flag {
    IsAdministrator,
    IsDisabled,
    EnableAllFolders,
}

impl UserPolicy {
    fn flag(&mut self, f: Flag) -> &mut Option<bool> {
        match f {
            Flag::IsAdministrator => &mut self.is_administrator,
            Flag::IsDisabled => &mut self.is_disabled,
            Flag::EnableAllFolders => &mut self.enable_all_folders,
        }
    }

    /// The flag, `false` when absent.
    fn is(&self, f: Flag) -> bool {
        match f {
            Flag::IsAdministrator => self.is_administrator,
            Flag::IsDisabled => self.is_disabled,
            Flag::EnableAllFolders => self.enable_all_folders,
        }
        .unwrap_or(false)
    }
}

/// `POST /Users/New` (`CreateUserByName`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateUserByName<'a> {
    name: &'a str,
    password: &'a str,
}

/// `POST /Users/Password` (`UpdateUserPassword`; an API key needs no current password).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateUserPassword<'a> {
    new_pw: &'a str,
    reset_password: bool,
}

/// Field name → policy flag.
const POLICY_FIELDS: [(&str, Flag); 2] = [
    ("admin", Flag::IsAdministrator),
    ("enableAllFolders", Flag::EnableAllFolders),
];

impl Jellyfin {
    pub fn new(url: &str, api_key: Secret, timeout: Duration) -> Result<Self, ServiceError> {
        Ok(Jellyfin {
            http: Http::new("jellyfin", url, timeout)?,
            key: api_key,
        })
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.http.set_backoff(backoff);
        self
    }

    /// One call; a 2xx answer must read as `T` (`IgnoredAny` where it does not matter).
    async fn call<T: DeserializeOwned, B: Serialize + Sync + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        secret: Option<&Secret>,
    ) -> Result<Json<T>, ServiceError> {
        let url = self.http.url(path);
        let auth = format!("MediaBrowser Token=\"{}\"", self.key.expose());
        let answer = self
            .http
            .send_json::<T>(secret, |c| {
                let mut r = c
                    .request(method.clone(), &url)
                    .header("Authorization", &auth)
                    .header("Accept", "application/json")
                    .query(query);
                if let Some(b) = body {
                    r = r.json(b);
                }
                r
            })
            .await?;
        if answer.response.status == 401 {
            return Err(ServiceError::Refused(
                "jellyfin rejected the API key (apiKeyFile)".into(),
            ));
        }
        Ok(answer)
    }

    /// A call that must succeed: its answer as `T`.
    async fn expect<T: DeserializeOwned + Default, B: Serialize + Sync + ?Sized>(
        &self,
        what: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        secret: Option<&Secret>,
    ) -> Result<T, ServiceError> {
        let answer = self.call::<T, B>(method, path, query, body, secret).await?;
        if answer.response.ok() {
            // A 2xx answer always has its body (it was read as `T`).
            Ok(answer.body.unwrap_or_default())
        } else {
            Err(refused(&self.http, what, &answer.response, secret))
        }
    }

    async fn users(&self) -> Result<Vec<UserDto>, ServiceError> {
        self.expect("listing users", Method::GET, "/Users", &[], NO_BODY, None)
            .await
    }

    async fn policy_of(&self, id: &str) -> Result<UserPolicy, ServiceError> {
        let u: UserDto = self
            .expect(
                &format!("reading user {id}"),
                Method::GET,
                &format!("/Users/{}", seg(id)),
                &[],
                NO_BODY,
                None,
            )
            .await?;
        u.policy.ok_or_else(|| {
            ServiceError::Refused(format!("jellyfin: user {id} has no policy in its answer"))
        })
    }

    async fn post_policy(&self, id: &str, policy: &UserPolicy) -> Result<(), ServiceError> {
        self.expect::<IgnoredAny, _>(
            &format!("updating the policy of user {id}"),
            Method::POST,
            &format!("/Users/{}/Policy", seg(id)),
            &[],
            Some(policy),
            None,
        )
        .await
        .map(|_| ())
    }

    /// Sets the policy flags in `changes`, with one read and as few writes as Jellyfin allows:
    /// an administrator is demoted before it is disabled.
    async fn change_policy(
        &self,
        id: &str,
        policy: UserPolicy,
        changes: &[(Flag, bool)],
    ) -> Result<(), ServiceError> {
        let (first, policy) = plan_policy(policy, changes);
        if let Some(demoted) = first {
            self.post_policy(id, &demoted).await?;
        }
        if let Some(policy) = policy {
            self.post_policy(id, &policy).await?;
        }
        Ok(())
    }

    async fn create(
        &self,
        key: &str,
        enabled: bool,
        fields: &BTreeMap<String, String>,
        password: Option<&Secret>,
    ) -> Result<Executed, ServiceError> {
        let random;
        let pw = match password {
            Some(p) => p,
            None => {
                random = generate_password().map_err(|e| {
                    ServiceError::Refused(format!("jellyfin: cannot draw a password: {e}"))
                })?;
                &random
            }
        };
        let body = CreateUserByName {
            name: key,
            password: pw.expose(),
        };
        let Json {
            response: resp,
            body: created,
            attempts,
        } = self
            .call::<UserDto, _>(Method::POST, "/Users/New", &[], Some(&body), Some(pw))
            .await?;
        let user = if resp.ok() {
            created.unwrap_or_default()
        } else if resp.status == 400 && attempts > 1 {
            // Jellyfin's answer to a duplicate name is a bare 400; after a lost answer, look.
            self.users()
                .await?
                .into_iter()
                .find(|u| {
                    u.name
                        .as_deref()
                        .is_some_and(|n| n.eq_ignore_ascii_case(key))
                })
                .ok_or_else(|| refused(&self.http, &format!("creating {key}"), &resp, Some(pw)))?
        } else {
            return Err(refused(
                &self.http,
                &format!("creating {key}"),
                &resp,
                Some(pw),
            ));
        };
        let id = user.id.ok_or_else(|| {
            ServiceError::Refused(format!("jellyfin created {key} but named no id"))
        })?;
        let mut changes: Vec<(Flag, bool)> = Vec::new();
        for (field, prop) in POLICY_FIELDS {
            if let Some(v) = fields.get(field) {
                changes.push((prop, v == "true"));
            }
        }
        changes.push((Flag::IsDisabled, !enabled));
        let policy = match user.policy {
            Some(p) => p,
            None => self.policy_of(&id).await?,
        };
        self.change_policy(&id, policy, &changes).await?;
        Ok(Executed {
            remote_id: Some(id),
        })
    }

    async fn run(
        &self,
        action: &AccountAction,
        password: Option<&Secret>,
    ) -> Result<Executed, ServiceError> {
        let done = Ok(Executed::default());
        match action {
            AccountAction::Create {
                key,
                enabled,
                fields,
                with_password,
                ..
            } => {
                let pw = if *with_password { password } else { None };
                self.create(key, *enabled, fields, pw).await
            }
            AccountAction::Update {
                remote_id, fields, ..
            } => {
                let mut changes = Vec::new();
                for (k, v) in fields {
                    let Some((_, prop)) = POLICY_FIELDS.iter().find(|(f, _)| f == k) else {
                        return Err(ServiceError::Refused(format!(
                            "jellyfin: field {k} is not managed"
                        )));
                    };
                    changes.push((*prop, v == "true"));
                }
                let policy = self.policy_of(remote_id).await?;
                self.change_policy(remote_id, policy, &changes).await?;
                done
            }
            AccountAction::Disable { remote_id, .. } | AccountAction::Enable { remote_id, .. } => {
                let disable = matches!(action, AccountAction::Disable { .. });
                let policy = self.policy_of(remote_id).await?;
                self.change_policy(remote_id, policy, &[(Flag::IsDisabled, disable)])
                    .await?;
                done
            }
            AccountAction::SetPassword { remote_id, .. } => {
                let Some(pw) = password else {
                    return Err(ServiceError::Refused(format!(
                        "jellyfin: no password to set for user {remote_id}"
                    )));
                };
                self.expect::<IgnoredAny, _>(
                    &format!("setting the password of user {remote_id}"),
                    Method::POST,
                    "/Users/Password",
                    &[("userId", remote_id.clone())],
                    Some(&UpdateUserPassword {
                        new_pw: pw.expose(),
                        reset_password: false,
                    }),
                    Some(pw),
                )
                .await?;
                done
            }
            AccountAction::Delete { remote_id, .. } => {
                let resp = self
                    .call::<IgnoredAny, _>(
                        Method::DELETE,
                        &format!("/Users/{}", seg(remote_id)),
                        &[],
                        NO_BODY,
                        None,
                    )
                    .await?
                    .response;
                if resp.ok() || resp.status == 404 {
                    done
                } else {
                    Err(refused(
                        &self.http,
                        &format!("deleting user {remote_id}"),
                        &resp,
                        None,
                    ))
                }
            }
            AccountAction::AddToGroup { group, .. }
            | AccountAction::RemoveFromGroup { group, .. } => Err(ServiceError::Refused(format!(
                "jellyfin has no groups (group {group})"
            ))),
            AccountAction::Mark { .. } | AccountAction::MarkRemoved { .. } => done,
        }
    }

    async fn check_health(&self) -> Result<(), ServiceError> {
        let url = self.http.url("/health");
        let resp = self.http.probe(|c| c.get(&url)).await?;
        if resp.ok() {
            Ok(())
        } else {
            Err(ServiceError::Transient(format!(
                "jellyfin is not healthy: /health answered HTTP {}",
                resp.status
            )))
        }
    }

    async fn observe_all(&self) -> Result<Vec<Account>, ServiceError> {
        Ok(self.users().await?.iter().filter_map(account_of).collect())
    }
}

/// The writes that set the flags in `changes` on `policy`: first a demotion (when an
/// administrator is disabled: Jellyfin refuses a disabled administrator), then the policy with
/// the changes (`None`: nothing to change).
fn plan_policy(
    mut policy: UserPolicy,
    changes: &[(Flag, bool)],
) -> (Option<UserPolicy>, Option<UserPolicy>) {
    let wants = |f: Flag| changes.iter().any(|(k, v)| *k == f && *v);
    let disabling = wants(Flag::IsDisabled) && !policy.is(Flag::IsDisabled);
    let mut first = None;
    if disabling && policy.is(Flag::IsAdministrator) {
        *policy.flag(Flag::IsAdministrator) = Some(false);
        first = Some(policy.clone());
    }
    let mut changed = false;
    // Only an enabled user is desired as an administrator (see `desired`), and Jellyfin
    // refuses a disabled administrator: promoting enables in the same write (the Enable
    // that follows in the plan then finds nothing to do).
    if wants(Flag::IsAdministrator) && !disabling && policy.is(Flag::IsDisabled) {
        *policy.flag(Flag::IsDisabled) = Some(false);
        changed = true;
    }
    for (k, v) in changes {
        if disabling && *k == Flag::IsAdministrator && *v {
            continue;
        }
        let f = policy.flag(*k);
        if *f != Some(*v) {
            *f = Some(*v);
            changed = true;
        }
    }
    (first, changed.then_some(policy))
}

/// One `UserDto`, normalised.
fn account_of(u: &UserDto) -> Option<Account> {
    let id = u.id.as_deref()?;
    let name = u.name.as_deref()?;
    let policy = u.policy.clone().unwrap_or_default();
    let mut fields = BTreeMap::new();
    for (field, prop) in POLICY_FIELDS {
        fields.insert(field.to_string(), flag(policy.is(prop)));
    }
    Some(Account {
        remote_id: id.to_string(),
        key: name.to_string(),
        enabled: !policy.is(Flag::IsDisabled),
        fields,
        groups: BTreeSet::new(),
        marked: false,
    })
}

impl Service for Jellyfin {
    fn kind(&self) -> ServiceKind {
        ServiceKind::Jellyfin
    }

    fn requests(&self) -> u64 {
        self.http.requests()
    }

    fn health(&self) -> BoxFuture<'_, Result<(), ServiceError>> {
        self.check_health().boxed()
    }

    fn observe(&self) -> BoxFuture<'_, Result<Vec<Account>, ServiceError>> {
        self.observe_all().boxed()
    }

    fn desired(&self, user: &ServiceUser) -> DesiredAccount {
        let s = &user.settings.jellyfin;
        let mut fields = BTreeMap::new();
        fields.insert("admin".to_string(), flag(s.admin && user.enabled));
        if let Some(all) = s.enable_all_folders {
            fields.insert("enableAllFolders".to_string(), flag(all));
        }
        DesiredAccount::of(user, fields)
    }

    fn execute<'a>(
        &'a self,
        action: &'a AccountAction,
        password: Option<&'a Secret>,
    ) -> BoxFuture<'a, Result<Executed, ServiceError>> {
        self.run(action, password).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dto(json: &str) -> UserDto {
        serde_json::from_str(json).expect("a UserDto")
    }

    #[test]
    fn user_dtos_become_accounts() {
        let u = dto(
            r#"{"Id": "0f0e", "Name": "Alice", "Policy": {"IsAdministrator": true,
                "IsDisabled": true, "EnableAllFolders": false}}"#,
        );
        let a = account_of(&u).expect("account");
        assert_eq!(a.remote_id, "0f0e");
        assert_eq!(a.key, "Alice");
        assert!(!a.enabled);
        assert_eq!(a.fields["admin"], "true");
        assert_eq!(a.fields["enableAllFolders"], "false");
        assert!(account_of(&dto(r#"{"Name": "x"}"#)).is_none());
    }

    /// A `UserDto` as Jellyfin 10.11 sends it, with a property the document does not list.
    const REAL: &str = r#"{"Name": "bob", "ServerId": "5f1c0c3c4f6b4e3e9d7a", "ServerName": null,
        "Id": "8a1d6c1b7f2e4a59b1c0d7e6f5a4b3c2", "PrimaryImageTag": null, "HasPassword": true,
        "HasConfiguredPassword": true, "HasConfiguredEasyPassword": false,
        "EnableAutoLogin": null, "LastLoginDate": null, "LastActivityDate": null,
        "Configuration": {"AudioLanguagePreference": null, "PlayDefaultAudioTrack": true,
          "OrderedViews": [], "LatestItemsExcludes": [], "MyMediaExcludes": [],
          "HidePlayedInLatest": true, "RememberAudioSelections": true,
          "SubtitleMode": "Default", "EnableNextEpisodeAutoPlay": true, "CastReceiverId": null},
        "Policy": {"IsAdministrator": false, "IsHidden": true, "EnableCollectionManagement": false,
          "EnableSubtitleManagement": false, "EnableLyricManagement": false, "IsDisabled": false,
          "MaxParentalRating": null, "MaxParentalSubRating": null, "BlockedTags": [],
          "AllowedTags": [], "EnableUserPreferenceAccess": true, "AccessSchedules": [],
          "BlockUnratedItems": [], "EnableRemoteControlOfOtherUsers": false,
          "EnableSharedDeviceControl": true, "EnableRemoteAccess": true,
          "EnableLiveTvManagement": true, "EnableLiveTvAccess": true, "EnableMediaPlayback": true,
          "EnableAudioPlaybackTranscoding": true, "EnableVideoPlaybackTranscoding": true,
          "EnablePlaybackRemuxing": true, "ForceRemoteSourceTranscoding": false,
          "EnableContentDeletion": false, "EnableContentDeletionFromFolders": [],
          "EnableContentDownloading": true, "EnableSyncTranscoding": true,
          "EnableMediaConversion": true, "EnabledDevices": [], "EnableAllDevices": true,
          "EnabledChannels": [], "EnableAllChannels": true,
          "EnabledFolders": ["f137a2dd21bbc1b99aa5c0f6bf02a805"], "EnableAllFolders": false,
          "InvalidLoginAttemptCount": 0, "LoginAttemptsBeforeLockout": -1,
          "MaxActiveSessions": 0, "EnablePublicSharing": true, "BlockedMediaFolders": [],
          "BlockedChannels": [], "RemoteClientBitrateLimit": 0,
          "AuthenticationProviderId": "Jellyfin.Server.Implementations.Users.DefaultAuthenticationProvider",
          "PasswordResetProviderId": "Jellyfin.Server.Implementations.Users.DefaultPasswordResetProvider",
          "SyncPlayAccess": "CreateAndJoinGroups", "SomeFutureProperty": {"Nested": [1, 2.5]}},
        "PrimaryImageAspectRatio": null}"#;

    #[test]
    fn a_real_user_dto_with_unknown_fields_and_nulls() {
        let list: Vec<UserDto> = serde_json::from_str(&format!(
            r#"[{REAL}, {{"Name": null, "Id": "1", "Policy": null}}, {{"Name": "nopolicy", "Id": "2", "Policy": null}}]"#
        ))
        .expect("GET /Users");
        let accounts: Vec<Account> = list.iter().filter_map(account_of).collect();
        assert_eq!(accounts.len(), 2, "a user without a name is skipped");
        assert_eq!(accounts[0].key, "bob");
        assert!(accounts[0].enabled);
        assert_eq!(accounts[0].fields["admin"], "false");
        assert_eq!(accounts[0].fields["enableAllFolders"], "false");
        // No policy in the answer: no flag is set.
        assert!(accounts[1].enabled);
        assert_eq!(accounts[1].fields["admin"], "false");
    }

    #[test]
    fn the_policy_goes_back_whole() {
        let policy = dto(REAL).policy.expect("a policy");
        let sent = |p: &UserPolicy| -> serde_json::Map<String, serde_json::Value> {
            serde_json::from_str(&serde_json::to_string(p).expect("json")).expect("an object")
        };
        let original = sent(&policy);
        // Promote: one write, with every other property as it came.
        let (first, then) = plan_policy(policy.clone(), &[(Flag::IsAdministrator, true)]);
        assert!(first.is_none());
        let mut expected = original.clone();
        expected.insert("IsAdministrator".into(), true.into());
        assert_eq!(sent(&then.expect("a write")), expected);
        // Nothing to change: no write.
        let (first, then) = plan_policy(policy.clone(), &[(Flag::EnableAllFolders, false)]);
        assert!(first.is_none() && then.is_none());
        // Disabling an administrator: demoted first, then disabled.
        let admin = UserPolicy {
            is_administrator: Some(true),
            ..policy.clone()
        };
        let (first, then) = plan_policy(admin, &[(Flag::IsDisabled, true)]);
        let first = first.expect("the demotion");
        assert_eq!(
            (first.is_administrator, first.is_disabled),
            (Some(false), Some(false))
        );
        let then = then.expect("the disabling");
        assert_eq!(
            (then.is_administrator, then.is_disabled),
            (Some(false), Some(true))
        );
        assert_eq!(then.other, policy.other, "the rest untouched");
        // A flag the server did not send is added when set, and only then.
        let mut bare = policy.clone();
        bare.enable_all_folders = None;
        assert!(!sent(&bare).contains_key("EnableAllFolders"));
        let (_, then) = plan_policy(bare, &[(Flag::EnableAllFolders, false)]);
        assert_eq!(then.expect("a write").enable_all_folders, Some(false));
    }

    #[test]
    fn a_disabled_user_is_no_administrator() {
        let j =
            Jellyfin::new("http://j", Secret::new("k"), Duration::from_secs(1)).expect("client");
        let mut u = ServiceUser {
            id: "alice".into(),
            enabled: true,
            ..ServiceUser::default()
        };
        u.settings.jellyfin.admin = true;
        assert_eq!(j.desired(&u).fields["admin"], "true");
        assert!(!j.desired(&u).fields.contains_key("enableAllFolders"));
        u.enabled = false;
        assert_eq!(j.desired(&u).fields["admin"], "false");
    }
}
