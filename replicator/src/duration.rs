//! Human durations and sizes as operators write them in config and on the command line: `500ms`, `5s`,
//! `1m`, `2h`, `1m30s`; `256MiB`, `1GiB`.

use std::time::Duration;

/// Parses `500ms`, `5s`, `1.5s`, `2m`, `1h`, `1m30s`. A bare number is refused (ambiguous units).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. 500ms, 5s, 2m".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("'{text}' is not a duration; write e.g. 500ms, 5s, 2m"));
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| format!("'{text}' has a malformed number"))?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let secs = match unit {
            "ms" => value / 1000.0,
            "s" => value,
            "m" | "min" => value * 60.0,
            "h" => value * 3600.0,
            "" => return Err(format!("'{text}' needs a unit: ms, s, m or h")),
            other => return Err(format!("'{text}' has unknown unit '{other}'; use ms, s, m or h")),
        };
        total += Duration::try_from_secs_f64(secs).map_err(|_| format!("'{text}' is out of range"))?;
    }
    Ok(total)
}

/// Parses byte sizes: `512KiB`, `256MiB`, `1GiB`, `64MB` (powers of 1024 either way), `4096B`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let num_len = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if num_len == 0 {
        return Err(format!("'{text}' is not a size; write e.g. 64MiB, 1GiB"));
    }
    let value: u64 = s[..num_len].parse().map_err(|_| format!("'{text}' is out of range"))?;
    let unit = s[num_len..].trim();
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "" => return Err(format!("'{text}' needs a unit: B, KiB, MiB, GiB or TiB")),
        other => return Err(format!("'{text}' has unknown unit '{other}'; use B, KiB, MiB, GiB or TiB")),
    };
    value.checked_mul(factor).ok_or_else(|| format!("'{text}' is out of range"))
}

/// `micros` since the Unix epoch as RFC 3339 UTC with milliseconds (`2024-05-01T12:00:00.123Z`).
pub fn rfc3339(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let millis = micros.rem_euclid(1_000_000) / 1000;
    let (days, day_secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = turnout_decoders::calendar::civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z", day_secs / 3600, day_secs % 3600 / 60, day_secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_size("64mb"), Ok(64 << 20));
        assert_eq!(parse_size("4096B"), Ok(4096));
        for bad in ["", "5", "MiB", "5 parsecs", "-1MiB", "99999999999999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_without_units_or_garbage_are_refused() {
        for bad in ["", "5", "s", "5x", "-1s", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
