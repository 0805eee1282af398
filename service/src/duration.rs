//! The one duration grammar of every `PUSHSYNC_*` setting and of an
//! Application's retry backoff: Go-style, as Kubernetes and Argo CD write
//! durations (`500ms`, `5s`, `1m30s`, `1.5h`), and a bare number of
//! seconds (`30`), which earlier receiver releases accepted.

use std::time::Duration;

/// Parse a duration; the error says what is expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid =
        || format!("{text:?} is not a duration (e.g. 500ms, 15s, 10m, 1h30m, or 30 for seconds)");
    let rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    if rest.bytes().all(|b| b.is_ascii_digit()) {
        return rest.parse().map(Duration::from_secs).map_err(|_| invalid());
    }
    let mut total = Duration::ZERO;
    let mut rest = rest;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ms" => number / 1000.0,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            _ => return Err(invalid()),
        };
        total = Duration::try_from_secs_f64(seconds)
            .ok()
            .and_then(|part| total.checked_add(part))
            .ok_or_else(invalid)?;
        rest = &rest[unit_end..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_go_and_argo_cd_write_them() {
        for (text, expected) in [
            ("5s", Duration::from_secs(5)),
            ("3m", Duration::from_secs(180)),
            ("1m30s", Duration::from_secs(90)),
            ("250ms", Duration::from_millis(250)),
            ("1.5h", Duration::from_secs(5400)),
            ("2h0m5s", Duration::from_secs(7205)),
            ("7", Duration::from_secs(7)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            (" 10m ", Duration::from_secs(600)),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text:?}");
        }
        for bad in [
            "",
            "s",
            "5x",
            "-1s",
            "1.2.3s",
            "5 s",
            "1e3s",
            "99999999999999999999h",
        ] {
            let error = parse_duration(bad).unwrap_err();
            assert!(error.contains("is not a duration"), "{bad:?}: {error}");
        }
    }
}
