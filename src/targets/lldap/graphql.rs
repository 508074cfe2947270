//! LLDAP's HTTP API: `/auth/simple/login` once, then GraphQL at `/api/graphql` with the JWT,
//! reused for every request and renewed when LLDAP answers 401 (expired or logged out). Requests
//! go through the one HTTP layer ([`crate::http`]).

use graphql_client::{GraphQLQuery, QueryBody};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::Mutex;

use crate::backoff::Transient;
use crate::http::{snippet, Decoded, Http, HttpError, Response};
use crate::secret::Secret;

use super::ldap::LdapError;

/// What LLDAP's GraphQL errors say, classified once. LLDAP's errors carry no codes: a
/// duplicate is a database `UNIQUE` error (or "already exists"), a missing object says
/// "not found" (``Entity not found: `<id>` ``).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphqlErrorKind {
    Duplicate,
    NotFound,
    Other,
}

impl GraphqlErrorKind {
    pub fn of(message: &str) -> GraphqlErrorKind {
        let lower = message.to_ascii_lowercase();
        if message.contains("UNIQUE") || lower.contains("already exists") {
            GraphqlErrorKind::Duplicate
        } else if lower.contains("not found") {
            GraphqlErrorKind::NotFound
        } else {
            GraphqlErrorKind::Other
        }
    }
}

/// What went wrong with LLDAP.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LldapError {
    /// Not reachable, 5xx, timeouts (after retries).
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("LLDAP refused the login of {user} (HTTP {status}): {reason}")]
    Login {
        user: String,
        status: u16,
        reason: String,
    },
    #[error("LLDAP rejected the token: {0}")]
    Unauthorized(String),
    #[error("LLDAP answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("unreadable answer from LLDAP: {0}")]
    Decode(String),
    #[error("LLDAP: {message}")]
    Graphql {
        kind: GraphqlErrorKind,
        message: String,
    },
    #[error(transparent)]
    Ldap(#[from] LdapError),
    /// The target could not be set up (its secret file, its URL).
    #[error("{0}")]
    Setup(String),
    #[error("group \"{0}\" could not be created")]
    UnresolvedGroup(String),
    #[error("LLDAP's {0} answer has no id")]
    NoId(&'static str),
    #[error("the password file could not be read")]
    NoPassword,
}

impl Transient for LldapError {
    fn is_transient(&self) -> bool {
        match self {
            LldapError::Http(e) => e.is_transient(),
            LldapError::Decode(_) => true,
            LldapError::Ldap(e) => e.is_transient(),
            _ => false,
        }
    }
}

impl LldapError {
    /// A GraphQL error of this kind.
    pub fn is(&self, kind: GraphqlErrorKind) -> bool {
        matches!(self, LldapError::Graphql { kind: k, .. } if *k == kind)
    }
}

/// A GraphQL error, with whether an earlier attempt of the same request failed transiently
/// (then the request may have taken effect on the server before the connection broke).
#[derive(Debug, Clone)]
pub struct CallError {
    pub error: LldapError,
    pub after_transient: bool,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl From<CallError> for LldapError {
    fn from(e: CallError) -> LldapError {
        e.error
    }
}

/// One GraphQL request, as LLDAP (juniper) reads it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    query: &'a str,
    variables: &'a RawValue,
    operation_name: &'a str,
}

/// The body of a request: `variables` is always an object (`{}` for an operation without
/// variables, whose generated `Variables` is a unit struct that serialises as `null`).
fn encode_request<V: Serialize>(
    query: &str,
    operation_name: &str,
    variables: &V,
) -> Result<Vec<u8>, serde_json::Error> {
    let variables = serde_json::value::to_raw_value(variables)?;
    let variables = match variables.get() {
        "null" => RawValue::from_string("{}".to_string())?,
        _ => variables,
    };
    serde_json::to_vec(&Request {
        query,
        variables: &variables,
        operation_name,
    })
}

#[derive(Deserialize)]
struct LoginAnswer {
    token: String,
}

pub struct GraphqlClient {
    http: Http,
    admin: String,
    password: Secret,
    token: Mutex<Option<Secret>>,
    logins: std::sync::atomic::AtomicU64,
}

impl GraphqlClient {
    pub fn new(http: Http, admin: &str, password: Secret) -> Self {
        GraphqlClient {
            http,
            admin: admin.to_string(),
            password,
            token: Mutex::new(None),
            logins: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// HTTP requests sent so far (logins included).
    pub fn requests(&self) -> u64 {
        self.http.requests()
    }

    pub fn logins(&self) -> u64 {
        self.logins.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn login_refused(&self, r: &Response) -> LldapError {
        let body = snippet(&r.body, Some(&self.password));
        let reason = match r.status {
            404 | 405 => format!(
                "no login endpoint at {}/auth/simple/login: is lldap.url LLDAP's web address?",
                self.http.base()
            ),
            _ if body.is_empty() => "wrong user name or password?".to_string(),
            _ => body,
        };
        LldapError::Login {
            user: self.admin.clone(),
            status: r.status,
            reason,
        }
    }

    fn read_login(&self, r: &Response) -> Decoded<Secret, LldapError> {
        match r.status {
            200 => match r.json::<LoginAnswer>() {
                Ok(a) => Decoded::Ok(Secret::new(a.token)),
                Err(e) => Decoded::Unreadable(format!("login answer: {e}")),
            },
            300..=499 => Decoded::Fail(self.login_refused(r)),
            status => Decoded::Fail(LldapError::Status {
                status,
                body: snippet(&r.body, Some(&self.password)),
            }),
        }
    }

    fn login_request(&self, c: &reqwest::Client) -> reqwest::RequestBuilder {
        c.post(self.http.url("/auth/simple/login")).json(
            &serde_json::json!({ "username": self.admin, "password": self.password.expose() }),
        )
    }

    /// One login attempt (the readiness probe): keeps the JWT.
    pub async fn login_once(&self) -> Result<(), LldapError> {
        self.logins
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let r = self.http.probe(|c| self.login_request(c)).await?;
        match self.read_login(&r) {
            Decoded::Ok(t) => {
                *self.token.lock().await = Some(t);
                Ok(())
            }
            Decoded::Unreadable(m) => Err(LldapError::Decode(m)),
            Decoded::Fail(e) => Err(e),
        }
    }

    async fn login(&self) -> Result<Secret, LldapError> {
        self.logins
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sent = self
            .http
            .send_decoded(
                Some(&self.password),
                |c| self.login_request(c),
                |r| self.read_login(r),
            )
            .await?;
        Ok(sent.answer)
    }

    async fn token(&self) -> Result<Secret, LldapError> {
        let mut guard = self.token.lock().await;
        if let Some(t) = guard.as_ref() {
            return Ok(t.clone());
        }
        let t = self.login().await?;
        *guard = Some(t.clone());
        Ok(t)
    }

    /// Runs the GraphQL operation `Q` (its document, its operation name and `variables`, as
    /// [`GraphQLQuery::build_query`] has them) and deserialises the answer's `data` straight into
    /// its `ResponseData` (no `serde_json::Value` tree: the observe answer of 100k users is tens
    /// of MB of text). Transient failures are retried with backoff; a 401 renews the token once;
    /// GraphQL `errors` in an HTTP 200 answer are errors.
    pub async fn call<Q: GraphQLQuery>(
        &self,
        variables: Q::Variables,
    ) -> Result<Q::ResponseData, CallError> {
        let QueryBody {
            variables,
            query,
            operation_name: operation,
        } = Q::build_query(variables);
        let body = encode_request(query, operation, &variables).map_err(|e| CallError {
            error: LldapError::Decode(format!("cannot encode {operation}: {e}")),
            after_transient: false,
        })?;
        let mut relogged = false;
        let mut after_transient = false;
        loop {
            let token = self.token().await.map_err(|error| CallError {
                error,
                after_transient,
            })?;
            let url = self.http.url("/api/graphql");
            let (sent, attempts) = self
                .http
                .send_counted(
                    None,
                    |c| {
                        c.post(&url)
                            .bearer_auth(token.expose())
                            .header("Content-Type", "application/json")
                            .body(body.clone())
                    },
                    |r| match r.status {
                        401 => Decoded::Fail(LldapError::Unauthorized(snippet(&r.body, None))),
                        200 => match decode_answer::<Q::ResponseData>(r.body.as_bytes()) {
                            Ok(t) => Decoded::Ok(t),
                            Err(LldapError::Decode(m)) => Decoded::Unreadable(m),
                            Err(e) => Decoded::Fail(e),
                        },
                        status => Decoded::Fail(LldapError::Status {
                            status,
                            body: snippet(&r.body, None),
                        }),
                    },
                )
                .await;
            if attempts > 1 {
                after_transient = true;
            }
            match sent {
                Ok(answer) => return Ok(answer),
                Err(LldapError::Unauthorized(_)) if !relogged => {
                    relogged = true;
                    let mut guard = self.token.lock().await;
                    if guard.as_ref().map(Secret::expose) == Some(token.expose()) {
                        *guard = None;
                    }
                }
                Err(error) => {
                    return Err(CallError {
                        error,
                        after_transient,
                    })
                }
            }
        }
    }
}

/// A GraphQL answer as sent: `data` is kept as raw text until the errors are checked.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    errors: Vec<AnswerError>,
}

#[derive(Deserialize)]
struct AnswerError {
    #[serde(default)]
    message: Option<String>,
}

/// Decodes the body of a GraphQL answer: `errors` (even in an HTTP 200 answer) become
/// [`LldapError::Graphql`]; otherwise `data` is deserialised as `T`.
pub fn decode_answer<T: DeserializeOwned>(body: &[u8]) -> Result<T, LldapError> {
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| LldapError::Decode(format!("GraphQL answer: {e}")))?;
    if !answer.errors.is_empty() {
        let msgs: Vec<&str> = answer
            .errors
            .iter()
            .map(|e| e.message.as_deref().unwrap_or("(no message)"))
            .collect();
        let message = msgs.join("; ");
        return Err(LldapError::Graphql {
            kind: GraphqlErrorKind::of(&message),
            message,
        });
    }
    // `"data": null` deserialises as `None`, like a missing `data`.
    match answer.data {
        Some(d) => serde_json::from_str(d.get())
            .map_err(|e| LldapError::Decode(format!("GraphQL answer data: {e}"))),
        None => Err(LldapError::Decode("GraphQL answer has no data".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_carries_the_document_its_name_and_an_object_of_variables() {
        use crate::targets::lldap::operations::{paasd_delete_user, PaasdDeleteUser, PaasdObserve};
        let q =
            PaasdObserve::build_query(crate::targets::lldap::operations::paasd_observe::Variables);
        let body = encode_request(q.query, q.operation_name, &q.variables).expect("encodes");
        let sent: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(sent["operationName"], "PaasdObserve");
        assert_eq!(sent["variables"], serde_json::json!({}), "not null");
        assert!(sent["query"]
            .as_str()
            .is_some_and(|d| d.starts_with("query PaasdObserve {")));
        let q = PaasdDeleteUser::build_query(paasd_delete_user::Variables { id: "bob".into() });
        let body = encode_request(q.query, q.operation_name, &q.variables).expect("encodes");
        let sent: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(sent["variables"], serde_json::json!({ "id": "bob" }));
        assert_eq!(sent.as_object().map(|o| o.len()), Some(3));
    }

    #[test]
    fn graphql_errors_are_classified_once() {
        let e = decode_answer::<serde_json::Value>(
            br#"{"data":null,"errors":[{"message":"Database error: `UNIQUE constraint failed: users.user_id`"}]}"#,
        )
        .expect_err("an error");
        assert!(e.is(GraphqlErrorKind::Duplicate), "{e:?}");
        let e = decode_answer::<serde_json::Value>(
            br#"{"data":null,"errors":[{"message":"Entity not found: `bob`"}]}"#,
        )
        .expect_err("an error");
        assert!(e.is(GraphqlErrorKind::NotFound), "{e:?}");
        assert_eq!(
            GraphqlErrorKind::of("Unauthorized"),
            GraphqlErrorKind::Other
        );
    }
}
