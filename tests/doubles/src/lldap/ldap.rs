//! A minimal LDAPv3 server (RFC 4511, BER) with what paasd needs from LLDAP's LDAP side:
//! simple Bind, Search (see `search.rs`), the Password Modify extended operation (RFC 3062),
//! WhoAmI and Unbind. Result codes and permission rules follow LLDAP's `crates/ldap` handler;
//! every other operation is answered with its own response type and `unwillingToPerform`.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::control::{lock, LdapDecision, Stats};
use super::model::{ADMIN_GROUP, PASSWORD_MANAGER_GROUP, READONLY_GROUP};
use super::search::{self, Bound};
use super::Shared;

/// The Password Modify extended operation (RFC 3062).
pub const OID_PASSWORD_MODIFY: &str = "1.3.6.1.4.1.4203.1.11.1";
pub(crate) const OID_WHOAMI: &str = "1.3.6.1.4.1.4203.1.11.3";
const MAX_MESSAGE: usize = 1 << 20;

// Result codes (RFC 4511 §4.1.9).
const SUCCESS: u8 = 0;
const OPERATIONS_ERROR: u8 = 1;
const PROTOCOL_ERROR: u8 = 2;
const CONSTRAINT_VIOLATION: u8 = 19;
const INVALID_DN_SYNTAX: u8 = 34;
const INAPPROPRIATE_AUTHENTICATION: u8 = 48;
const INVALID_CREDENTIALS: u8 = 49;
const INSUFFICIENT_ACCESS_RIGHTS: u8 = 50;
const UNAVAILABLE: u8 = 52;
const UNWILLING_TO_PERFORM: u8 = 53;
const NAMING_VIOLATION: u8 = 64;

// ---- BER ------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub value: &'a [u8],
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BerError {
    Malformed(&'static str),
}

/// Reads one TLV; `Ok(None)` if more bytes are needed.
pub(crate) fn read_tlv(buf: &[u8]) -> Result<Option<(Tlv<'_>, usize)>, BerError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let tag = buf[0];
    if tag & 0x1f == 0x1f {
        return Err(BerError::Malformed("multi-byte tags are not used by LDAP"));
    }
    let first = buf[1];
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else if first == 0x80 {
        return Err(BerError::Malformed(
            "indefinite length is not allowed in LDAP",
        ));
    } else {
        let n = usize::from(first & 0x7f);
        if n > 4 {
            return Err(BerError::Malformed("length too long"));
        }
        if buf.len() < 2 + n {
            return Ok(None);
        }
        let mut len = 0usize;
        for b in &buf[2..2 + n] {
            len = (len << 8) | usize::from(*b);
        }
        (len, 2 + n)
    };
    if len > MAX_MESSAGE {
        return Err(BerError::Malformed("message too large"));
    }
    if buf.len() < header + len {
        return Ok(None);
    }
    Ok(Some((
        Tlv {
            tag,
            value: &buf[header..header + len],
        },
        header + len,
    )))
}

pub(crate) fn children(mut content: &[u8]) -> Result<Vec<Tlv<'_>>, BerError> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (tlv, used) = read_tlv(content)?.ok_or(BerError::Malformed("truncated element"))?;
        out.push(tlv);
        content = &content[used..];
    }
    Ok(out)
}

pub(crate) fn integer(value: &[u8]) -> Result<i64, BerError> {
    if value.is_empty() || value.len() > 8 {
        return Err(BerError::Malformed("bad integer"));
    }
    let mut v: i64 = if value[0] & 0x80 != 0 { -1 } else { 0 };
    for b in value {
        v = (v << 8) | i64::from(*b);
    }
    Ok(v)
}

pub(crate) fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

pub(crate) fn encode_int(tag: u8, v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let b = bytes[start];
        let next = bytes[start + 1];
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    encode(tag, &bytes[start..])
}

/// LDAPResult components: resultCode, matchedDN, diagnosticMessage.
pub(crate) fn ldap_result(code: u8, message: &str) -> Vec<u8> {
    let mut c = encode(0x0a, &[code]);
    c.extend(encode(0x04, b""));
    c.extend(encode(0x04, message.as_bytes()));
    c
}

pub(crate) fn envelope(id: i64, op: Vec<u8>) -> Vec<u8> {
    let mut c = encode_int(0x02, id);
    c.extend(op);
    encode(0x30, &c)
}

fn bind_response(id: i64, code: u8, message: &str) -> Vec<u8> {
    envelope(id, encode(0x61, &ldap_result(code, message)))
}

fn extended_response(id: i64, code: u8, message: &str) -> Vec<u8> {
    envelope(id, encode(0x78, &ldap_result(code, message)))
}

/// The response type answering a request type (None: no response, e.g. abandon/unbind).
fn response_tag(request_tag: u8) -> Option<u8> {
    Some(match request_tag {
        0x60 => 0x61, // bind
        0x63 => 0x65, // search → SearchResultDone
        0x66 => 0x67, // modify
        0x68 => 0x69, // add
        0x4a => 0x6b, // delete
        0x6c => 0x6d, // modify DN
        0x6e => 0x6f, // compare
        0x77 => 0x78, // extended
        0x42 | 0x50 => return None,
        _ => 0x78,
    })
}

fn op_name(tag: u8) -> &'static str {
    match tag {
        0x60 => "bind",
        0x42 => "unbind",
        0x63 => "search",
        0x66 => "modify",
        0x68 => "add",
        0x4a => "delete",
        0x6c => "modify_dn",
        0x6e => "compare",
        0x50 => "abandon",
        0x77 => "extended",
        _ => "unknown",
    }
}

// ---- DNs --------------------------------------------------------------------------------------

fn parse_dn(dn: &str) -> Result<Vec<(String, String)>, String> {
    dn.split(',')
        .map(|rdn| {
            let (k, v) = rdn
                .split_once('=')
                .ok_or_else(|| format!(r#"Invalid DN part "{rdn}""#))?;
            Ok((k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .collect()
}

/// LLDAP's `get_user_id_from_distinguished_name`: `uid=<id>,ou=people,<base>` or `cn=…`.
pub(crate) fn user_id_from_dn(dn: &str, base_dn: &str) -> Result<String, (u8, String)> {
    let dn = dn.to_ascii_lowercase();
    let base = parse_dn(&base_dn.to_ascii_lowercase()).map_err(|e| (INVALID_DN_SYNTAX, e))?;
    let parts = parse_dn(&dn).map_err(|e| (INVALID_DN_SYNTAX, e))?;
    if parts.len() < base.len() || parts[parts.len() - base.len()..] != base[..] {
        return Err((INVALID_DN_SYNTAX, "Not a subtree of the base tree".into()));
    }
    if parts.len() == base.len() + 2
        && parts[1].0 == "ou"
        && parts[1].1 == "people"
        && (parts[0].0 == "cn" || parts[0].0 == "uid")
    {
        return Ok(parts[0].1.clone());
    }
    Err((
        INVALID_DN_SYNTAX,
        format!(r#"Unexpected DN format. Got "{dn}", expected: "uid=id,ou=people,{base_dn}""#),
    ))
}

// ---- server -----------------------------------------------------------------------------------

pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    Stats::bump(&mut lock(&shared.stats).ldap, "connections");
                    tokio::spawn(connection(stream, shared.clone(), shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lldap double: LDAP accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

enum Next {
    Reply(Vec<u8>),
    Silent,
    Close(Option<Vec<u8>>),
    Reset,
}

async fn connection(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut bound: Option<Bound> = None;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let parsed = match read_tlv(&buf) {
            Ok(Some((tlv, used))) => {
                // Unbind and abandon get no response: faults do not apply to them.
                let op_tag = children(tlv.value)
                    .ok()
                    .and_then(|parts| parts.get(1).map(|t| t.tag));
                let decision = if matches!(op_tag, Some(0x42 | 0x50)) {
                    LdapDecision {
                        delay: Duration::ZERO,
                        reset: false,
                        unavailable: false,
                    }
                } else {
                    shared.faults.take_ldap()
                };
                if !decision.delay.is_zero() {
                    tokio::time::sleep(decision.delay).await;
                }
                Some((handle_message(&shared, &mut bound, tlv, decision), used))
            }
            Ok(None) => None,
            Err(BerError::Malformed(why)) => {
                tracing::debug!(why, "lldap double: malformed LDAP message");
                Stats::bump(&mut lock(&shared.stats).ldap, "malformed");
                // Notice of disconnection (messageID 0).
                let notice = extended_response(0, PROTOCOL_ERROR, why);
                let _ = stream.write_all(&notice).await;
                return;
            }
        };
        if let Some((next, used)) = parsed {
            buf.drain(..used);
            match next {
                Next::Reply(bytes) => {
                    if stream.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Next::Silent => {}
                Next::Close(bytes) => {
                    if let Some(bytes) = bytes {
                        let _ = stream.write_all(&bytes).await;
                    }
                    return;
                }
                Next::Reset => {
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                    return;
                }
            }
            continue;
        }
        tokio::select! {
            n = stream.read(&mut chunk) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
            _ = shutdown.changed() => return,
        }
    }
}

fn handle_message(
    shared: &Shared,
    bound: &mut Option<Bound>,
    msg: Tlv<'_>,
    decision: LdapDecision,
) -> Next {
    let parsed = (|| -> Result<(i64, Tlv<'_>), BerError> {
        if msg.tag != 0x30 {
            return Err(BerError::Malformed("LDAPMessage is not a SEQUENCE"));
        }
        let parts = children(msg.value)?;
        if parts.len() < 2 || parts[0].tag != 0x02 {
            return Err(BerError::Malformed(
                "LDAPMessage without messageID and protocolOp",
            ));
        }
        Ok((integer(parts[0].value)?, parts[1]))
    })();
    let (id, op) = match parsed {
        Ok(v) => v,
        Err(BerError::Malformed(why)) => {
            Stats::bump(&mut lock(&shared.stats).ldap, "malformed");
            return Next::Close(Some(extended_response(0, PROTOCOL_ERROR, why)));
        }
    };
    if decision.reset {
        Stats::bump(&mut lock(&shared.stats).faults_injected, "ldap_reset");
        return Next::Reset;
    }
    if decision.unavailable {
        Stats::bump(&mut lock(&shared.stats).faults_injected, "ldap_unavailable");
        return match response_tag(op.tag) {
            Some(tag) => Next::Reply(envelope(
                id,
                encode(
                    tag,
                    &ldap_result(UNAVAILABLE, "unavailable (injected fault)"),
                ),
            )),
            None => Next::Silent,
        };
    }
    match op.tag {
        0x60 => Next::Reply(bind(shared, bound, id, op.value)),
        0x42 => {
            Stats::bump(&mut lock(&shared.stats).ldap, "unbind");
            *bound = None;
            Next::Close(None)
        }
        0x50 => {
            Stats::bump(&mut lock(&shared.stats).ldap, "abandon");
            Next::Silent
        }
        0x77 => {
            let user = bound.as_ref().map(|b| b.user.clone());
            Next::Reply(extended(shared, &user, id, op.value))
        }
        0x63 => match search::parse_search(op.value) {
            Ok(req) => Next::Reply(search::search(shared, bound.as_ref(), id, &req)),
            Err(BerError::Malformed(why)) => {
                // LLDAP's codec fails to decode the message and the session ends.
                tracing::debug!(why, "lldap double: undecodable SearchRequest");
                Stats::bump(&mut lock(&shared.stats).ldap, "malformed");
                Next::Close(None)
            }
        },
        tag => {
            Stats::bump(&mut lock(&shared.stats).ldap, "unsupported");
            tracing::debug!(
                op = op_name(tag),
                "lldap double: unsupported LDAP operation"
            );
            let message = format!(
                "Unsupported operation: {} (not simulated by the test double)",
                op_name(tag)
            );
            let rtag = response_tag(tag).unwrap_or(0x78);
            Next::Reply(envelope(
                id,
                encode(rtag, &ldap_result(UNWILLING_TO_PERFORM, &message)),
            ))
        }
    }
}

fn bind(shared: &Shared, bound: &mut Option<Bound>, id: i64, content: &[u8]) -> Vec<u8> {
    Stats::bump(&mut lock(&shared.stats).ldap, "bind");
    let fail = |code: u8, msg: &str| {
        Stats::bump(&mut lock(&shared.stats).ldap, "bind_failed");
        bind_response(id, code, msg)
    };
    let parts = match children(content) {
        Ok(p) if p.len() >= 3 && p[0].tag == 0x02 && p[1].tag == 0x04 => p,
        _ => return fail(PROTOCOL_ERROR, "malformed BindRequest"),
    };
    *bound = None;
    let dn = String::from_utf8_lossy(parts[1].value).into_owned();
    if dn.is_empty() {
        return fail(INAPPROPRIATE_AUTHENTICATION, "Anonymous bind not allowed");
    }
    let uid = match user_id_from_dn(&dn, &shared.base_dn) {
        Ok(u) => u,
        Err((_, msg)) => return fail(NAMING_VIOLATION, &msg),
    };
    if parts[2].tag != 0x80 {
        return fail(UNWILLING_TO_PERFORM, "SASL not supported");
    }
    let password = String::from_utf8_lossy(parts[2].value);
    let st = lock(&shared.state);
    if st.check_password(&uid, &password) {
        // LLDAP reads the user's groups (its permissions) once, at bind time.
        let uid = uid.to_ascii_lowercase();
        let can_read_all = [ADMIN_GROUP, PASSWORD_MANAGER_GROUP, READONLY_GROUP]
            .iter()
            .any(|g| st.is_member_of_name(&uid, g));
        drop(st);
        Stats::bump(&mut lock(&shared.stats).ldap, "bind_ok");
        tracing::debug!(user = %uid, "lldap double: LDAP bind ok");
        *bound = Some(Bound {
            user: uid,
            can_read_all,
        });
        bind_response(id, SUCCESS, "")
    } else {
        fail(INVALID_CREDENTIALS, "")
    }
}

fn extended(shared: &Shared, bound: &Option<String>, id: i64, content: &[u8]) -> Vec<u8> {
    let parts = match children(content) {
        Ok(p) if !p.is_empty() && p[0].tag == 0x80 => p,
        _ => {
            return extended_response(id, PROTOCOL_ERROR, "malformed ExtendedRequest");
        }
    };
    let oid = String::from_utf8_lossy(parts[0].value).into_owned();
    let value = parts.get(1).filter(|t| t.tag == 0x81).map(|t| t.value);
    match oid.as_str() {
        OID_PASSWORD_MODIFY => password_modify(shared, bound, id, value),
        OID_WHOAMI => {
            Stats::bump(&mut lock(&shared.stats).ldap, "whoami");
            let authz = bound
                .as_ref()
                .map(|u| format!("dn:uid={u},ou=people,{}", shared.base_dn))
                .unwrap_or_default();
            extended_response(id, SUCCESS, &authz)
        }
        _ => {
            Stats::bump(&mut lock(&shared.stats).ldap, "unsupported");
            extended_response(
                id,
                UNWILLING_TO_PERFORM,
                &format!("Unsupported extended operation: {oid}"),
            )
        }
    }
}

fn password_modify(
    shared: &Shared,
    bound: &Option<String>,
    id: i64,
    value: Option<&[u8]>,
) -> Vec<u8> {
    Stats::bump(&mut lock(&shared.stats).ldap, "password_modify");
    let fail = |code: u8, msg: &str| {
        Stats::bump(&mut lock(&shared.stats).ldap, "password_modify_failed");
        tracing::debug!(code, "lldap double: password modify refused");
        extended_response(id, code, msg)
    };
    // PasswdModifyRequestValue ::= SEQUENCE { userIdentity [0], oldPasswd [1], newPasswd [2] }
    let fields = match value.map(read_tlv) {
        None => Some(Vec::new()),
        Some(Ok(Some((seq, used)))) if seq.tag == 0x30 && Some(used) == value.map(<[u8]>::len) => {
            children(seq.value).ok()
        }
        _ => None,
    };
    let Some(fields) = fields else {
        return fail(
            PROTOCOL_ERROR,
            "Error while parsing password modify request: invalid PasswdModifyRequestValue",
        );
    };
    let get = |tag: u8| {
        fields
            .iter()
            .find(|t| t.tag == tag)
            .map(|t| String::from_utf8_lossy(t.value).into_owned())
    };
    let Some(credentials) = bound.clone() else {
        return fail(INSUFFICIENT_ACCESS_RIGHTS, "No user currently bound");
    };
    let (Some(identity), Some(new_password)) = (get(0x80), get(0x82)) else {
        return fail(CONSTRAINT_VIOLATION, "Missing either user_id or password");
    };
    let uid = match user_id_from_dn(&identity, &shared.base_dn) {
        Ok(u) => u.to_ascii_lowercase(),
        Err((_, msg)) => return fail(INVALID_DN_SYNTAX, &format!("Invalid username: {msg}")),
    };
    let mut st = lock(&shared.state);
    let is_admin = st.is_member_of_name(&credentials, ADMIN_GROUP);
    let is_password_manager = st.is_member_of_name(&credentials, PASSWORD_MANAGER_GROUP);
    let denied = format!("User `{credentials}` cannot modify the password of user `{uid}`");
    // LLDAP first needs read access to the target (admins and password managers read everyone,
    // a regular user only itself), then reads the target's groups (an unknown user fails here).
    if !(is_admin || is_password_manager || credentials == uid) {
        return fail(INSUFFICIENT_ACCESS_RIGHTS, &denied);
    }
    if st.user(&uid).is_none() {
        return fail(
            OPERATIONS_ERROR,
            &format!("Internal error while requesting user's groups: EntityNotFound(\"{uid}\")"),
        );
    }
    let target_is_admin = st.is_member_of_name(&uid, ADMIN_GROUP);
    let allowed = is_admin || (is_password_manager && !target_is_admin) || credentials == uid;
    if !allowed {
        return fail(INSUFFICIENT_ACCESS_RIGHTS, &denied);
    }
    match st.set_password(&uid, &new_password) {
        Ok(()) => {
            drop(st);
            Stats::bump(&mut lock(&shared.stats).ldap, "password_modify_ok");
            tracing::debug!(user = %uid, "lldap double: password set");
            extended_response(id, SUCCESS, "")
        }
        Err(e) => fail(
            OPERATIONS_ERROR,
            &format!("Error while changing the password: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ber_round_trip() {
        let msg = envelope(300, encode(0x61, &ldap_result(49, "")));
        let (tlv, used) = read_tlv(&msg).unwrap().unwrap();
        assert_eq!(used, msg.len());
        let parts = children(tlv.value).unwrap();
        assert_eq!(integer(parts[0].value).unwrap(), 300);
        assert_eq!(parts[1].tag, 0x61);
        assert!(read_tlv(&msg[..msg.len() - 1]).unwrap().is_none());
        assert_eq!(integer(&[0xff]).unwrap(), -1);
        let long = encode(0x04, &[7u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(read_tlv(&long).unwrap().unwrap().0.value.len(), 300);
    }

    #[test]
    fn dn_parsing() {
        let base = "dc=example,dc=com";
        assert_eq!(
            user_id_from_dn("uid=Bob,ou=people,dc=example,dc=com", base).unwrap(),
            "bob"
        );
        assert_eq!(
            user_id_from_dn("cn=bob, ou=People, DC=example,dc=com", base).unwrap(),
            "bob"
        );
        assert!(user_id_from_dn("uid=bob,ou=groups,dc=example,dc=com", base).is_err());
        assert!(user_id_from_dn("uid=bob,ou=people,dc=other,dc=com", base).is_err());
        assert!(user_id_from_dn("bob", base).is_err());
    }
}
