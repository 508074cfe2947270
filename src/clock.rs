//! Small time helpers: RFC 3339 timestamps for JSON, local "HH:MM" for the status line and
//! "HH:MM:SS" for "next try at", and HTTP dates (`Retry-After`, a cookie's `Expires`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `2026-11-21T17:40:03Z` (UTC, whole seconds).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Local wall-clock (hour, minute, second) of `t` (the zone of /etc/localtime or $TZ; UTC when
/// unknown).
fn local_hms(t: SystemTime) -> (u64, u64, u64) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as libc::time_t;
    // SAFETY: localtime_r writes into the zeroed `tm` we own; `secs` is a valid time_t.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if ok {
        (tm.tm_hour as u64, tm.tm_min as u64, tm.tm_sec as u64)
    } else {
        let rem = secs as u64 % 86_400;
        (rem / 3600, (rem % 3600) / 60, rem % 60)
    }
}

/// Local wall-clock "HH:MM" of `t` (the zone of /etc/localtime or $TZ; UTC when unknown).
pub fn local_hhmm(t: SystemTime) -> String {
    let (h, m, _) = local_hms(t);
    format!("{h:02}:{m:02}")
}

/// Local wall-clock "HH:MM:SS" of `t`.
pub fn local_hhmmss(t: SystemTime) -> String {
    let (h, m, s) = local_hms(t);
    format!("{h:02}:{m:02}:{s:02}")
}

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An HTTP date in its preferred form (IMF-fixdate, RFC 9110 §5.6.7:
/// `Sun, 06 Nov 1994 08:49:37 GMT`), as sent in `Retry-After` and a cookie's `Expires`; the
/// obsolete forms are not read.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let mut it = s.trim().split_ascii_whitespace();
    let _weekday = it.next()?.strip_suffix(',')?;
    let day: u32 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if it.next()? != "GMT" || it.next().is_some() || hms.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(days * 86_400 + h * 3600 + m * 60 + sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_283_999)),
            "2026-11-21T17:59:59Z"
        );
    }

    #[test]
    fn hhmm_has_the_right_shape() {
        let s = local_hhmm(SystemTime::now());
        assert_eq!(s.len(), 5);
        assert_eq!(&s[2..3], ":");
        let s = local_hhmmss(SystemTime::now());
        assert_eq!(s.len(), 8);
        assert_eq!((&s[2..3], &s[5..6]), (":", ":"));
    }

    #[test]
    fn http_dates() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("RFC 9110's example");
        assert_eq!(rfc3339(t), "1994-11-06T08:49:37Z");
        let t = parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT").expect("a leap day");
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00Z");
        for bad in [
            "",
            "120",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 CET",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
        ] {
            assert!(parse_http_date(bad).is_none(), "{bad}");
        }
    }
}
