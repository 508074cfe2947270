//! Quotas as Nextcloud keeps them: it stores a rounded human-readable size and reports bytes, so
//! both sides are compared as the byte count Nextcloud ends up with.

use super::super::accounts::Scalar;

/// `\OC_Helper::computerFileSize`: "5 GB", "5gb", "1.5 M", "1024" → bytes (1024-based, rounded).
pub fn computer_file_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    if s.is_empty() {
        return None;
    }
    let idx = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(idx);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim() {
        "" | "b" => 1.0,
        "k" | "kb" => 1024.0,
        "m" | "mb" => 1024f64.powi(2),
        "g" | "gb" => 1024f64.powi(3),
        "t" | "tb" => 1024f64.powi(4),
        "p" | "pb" => 1024f64.powi(5),
        _ => return None,
    };
    let v = (n * mult).round();
    (v.is_finite() && v >= 0.0 && v < u64::MAX as f64).then_some(v as u64)
}

/// `\OC_Helper::humanFileSize`, which is how Nextcloud stores a quota: B exact, KB rounded to
/// an integer, MB and up to one decimal.
pub fn human_file_size(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = (bytes as f64 / 1024.0).round();
    if v < 1024.0 {
        return format!("{v} KB");
    }
    for unit in ["MB", "GB", "TB"] {
        v = (v / 1024.0 * 10.0).round() / 10.0;
        if v < 1024.0 {
            return format!("{v} {unit}");
        }
    }
    v = (v / 1024.0 * 10.0).round() / 10.0;
    format!("{v} PB")
}

/// A spec quota as Nextcloud will report it: `none`, or the byte count after Nextcloud's
/// rounding. `default` (and anything unparsable) is not managed.
pub fn desired_quota(q: &str) -> Option<String> {
    let q = q.trim();
    if q.eq_ignore_ascii_case("none") {
        return Some("none".into());
    }
    if q.eq_ignore_ascii_case("default") {
        return None;
    }
    let bytes = computer_file_size(q)?;
    computer_file_size(&human_file_size(bytes)).map(|b| b.to_string())
}

/// The `quota.quota` of a user's details: bytes (negative = unlimited) or a string (`none`, or a
/// size for users whose storage is not set up yet).
pub fn observed_quota(v: &Scalar) -> Option<String> {
    match v {
        Scalar::Number(n) => {
            let f = n.as_f64()?;
            Some(if f < 0.0 {
                "none".into()
            } else {
                format!("{}", f.round() as u64)
            })
        }
        Scalar::Text(s) if s.eq_ignore_ascii_case("none") => Some("none".into()),
        Scalar::Text(s) => match s.trim().parse::<f64>() {
            Ok(f) if f < 0.0 => Some("none".into()),
            _ => computer_file_size(s).map(|b| b.to_string()),
        },
        Scalar::Bool(_) => None,
    }
}
