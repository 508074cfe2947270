//! The rules for single values of a spec: ids, names, e-mail addresses, durations, quotas.

/// A valid LLDAP user id: lower-case letters, digits, `_ - .`, starting with a letter or digit.
pub fn valid_user_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && id.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.".contains(c))
}

/// A valid group name: `A-Z a-z 0-9 _ - .`, 1–64 characters, not a built-in `lldap_` group.
pub fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        && !name.to_ascii_lowercase().starts_with("lldap_")
}

/// A plausible e-mail address (what LLDAP and the services accept): `local@domain.tld`, no spaces.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && email.len() <= 254
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A valid custom attribute name: `A-Z a-z 0-9 -`, as LLDAP's schema accepts.
pub fn valid_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Parses `"0"`, `"90"`, `"90s"`, `"15m"`, `"12h"`, `"30d"` into seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let factor = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// Nextcloud quota strings: `none`, `default`, a byte count, or a number with a unit (`10 GB`).
pub fn valid_nextcloud_quota(q: &str) -> bool {
    if q == "none" || q == "default" {
        return true;
    }
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, unit) = q.split_at(split);
    !num.is_empty()
        && num.parse::<f64>().is_ok()
        && matches!(
            unit.trim().to_ascii_uppercase().as_str(),
            "" | "B" | "KB" | "MB" | "GB" | "TB" | "K" | "M" | "G" | "T"
        )
}
