//! Time as people read and write it: a Unix time shown in UTC
//! (`2026-11-27 16:40:05Z`), an age (`3 min`), and a duration as an
//! operator types it (`90s`, `15m`, `2h`, `7d`). Pure.

/// `ts` (Unix seconds) as `YYYY-MM-DD HH:MM:SSZ`.
pub fn utc(ts: i64) -> String {
    let (days, secs) = (ts.div_euclid(86_400), ts.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A number of seconds as a short age: `45 s`, `12 min`, `5 h`, `3 d`.
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

/// Parses `N[s|m|h|d|w]` (no unit: seconds) into seconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit_s = match unit {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad_duration(text)),
    };
    num.parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_s))
        .ok_or_else(|| bad_duration(text))
}

fn bad_duration(text: &str) -> String {
    format!(
        "invalid duration {}: write a number and a unit, e.g. 90s, 15m, 2h, 7d",
        crate::text::excerpt(text)
    )
}

/// The Unix time of a UTC date and time; `None` for a date that does not
/// exist (month 13, February 30, second 61 ...).
pub fn unix_of(y: i64, m: u32, d: u32, hh: u32, mm: u32, ss: u32) -> Option<i64> {
    if !(1..=12).contains(&m) || d == 0 || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    // Hinnant's days_from_civil.
    let (y2, mp) = if m <= 2 {
        (y - 1, i64::from(m) + 9)
    } else {
        (y, i64::from(m) - 3)
    };
    let era = y2.div_euclid(400);
    let yoe = y2.rem_euclid(400);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    // A day past the month's end comes back as another date.
    if civil_from_days(days) != (y, m, d) {
        return None;
    }
    Some(days * 86_400 + i64::from(hh) * 3600 + i64::from(mm) * 60 + i64::from(ss))
}

/// (year, month, day) of a count of days since 1970-01-01 (proleptic
/// Gregorian; H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_of_dates_round_trip() {
        assert_eq!(unix_of(1970, 1, 1, 0, 0, 0), Some(0));
        assert_eq!(
            unix_of(2026, 11, 27, 16, 40, 5).map(utc).unwrap(),
            "2026-11-27 16:40:05Z"
        );
        assert_eq!(
            unix_of(2000, 2, 29, 23, 59, 59).map(utc).unwrap(),
            "2000-02-29 23:59:59Z"
        );
        assert_eq!(unix_of(1950, 1, 1, 0, 0, 0), Some(-631_152_000));
        for t in [
            -86_400i64 * 400,
            -1,
            0,
            951_868_800,
            4_102_444_799,
            253_402_300_799,
        ] {
            let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
            let (y, m, d) = civil_from_days(days);
            let (hh, mm, ss) = (
                (secs / 3600) as u32,
                (secs / 60 % 60) as u32,
                (secs % 60) as u32,
            );
            assert_eq!(unix_of(y, m, d, hh, mm, ss), Some(t));
        }
        for (y, m, d) in [
            (2026, 2, 29),
            (2026, 13, 1),
            (2026, 0, 1),
            (2026, 4, 31),
            (2026, 1, 0),
        ] {
            assert_eq!(unix_of(y, m, d, 0, 0, 0), None, "{y}-{m}-{d}");
        }
        assert_eq!(unix_of(2026, 1, 1, 24, 0, 0), None);
        assert_eq!(unix_of(2026, 1, 1, 0, 60, 0), None);
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(utc(1_795_797_605), "2026-11-27 16:40:05Z");
        assert_eq!(utc(-1), "1969-12-31 23:59:59Z");
        assert_eq!(utc(4_102_444_800), "2100-01-01 00:00:00Z");
    }

    #[test]
    fn ages() {
        assert_eq!(age(-3), "0 s");
        assert_eq!(age(45), "45 s");
        assert_eq!(age(600), "10 min");
        assert_eq!(age(3 * 3600), "3 h");
        assert_eq!(age(9 * 86_400), "9 d");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert_eq!(parse_duration("1w"), Ok(604_800));
        for bad in [
            "",
            "h",
            "-5m",
            "5 y",
            "1.5h",
            "99999999999999999999d",
            "5\u{0}m",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("e.g. 90s"), "{bad:?}: {e}");
        }
    }
}
