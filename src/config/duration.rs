//! Go-style duration strings (`"30s"`, `"1h30m"`, `"500ms"`, `"1.5h"`), as DM's YAML and TOML
//! configs write them.
//!
//! A config keeps the raw text in a [`ConfigDuration`] so that a bad value does not stop
//! parsing: `validate()` reports it beside every other problem of the file.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Parses a Go `time.ParseDuration` string. Negative durations are rejected: no DM key uses them.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(format!("negative duration `{text}`"));
    }
    let mut rest = s;
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("invalid duration `{text}`: expected a number"));
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid duration `{text}`: bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let nanos_per_unit = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("invalid duration `{text}`: missing unit")),
            other => return Err(format!("invalid duration `{text}`: unknown unit `{other}`")),
        };
        total_nanos += number * nanos_per_unit;
    }
    if total_nanos > u64::MAX as f64 {
        return Err(format!("invalid duration `{text}`: overflow"));
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

/// Formats a duration the way Go prints it (`1h30m0s`, `500ms`, `0s`).
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        return match nanos {
            n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{}us", n / 1_000),
            n => format!("{n}ns"),
        };
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let frac = d.subsec_nanos();
    let sec_part = if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{:09}", frac);
        format!("{s}.{}s", f.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => sec_part,
        (0, m) => format!("{m}m{sec_part}"),
        (h, m) => format!("{h}h{m}m{sec_part}"),
    }
}

/// A duration as written in a config file. Parsing never fails; [`ConfigDuration::check`]
/// tells whether the text is valid, and validation reports it with the file and key.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigDuration {
    raw: String,
    parsed: Option<Duration>,
}

impl ConfigDuration {
    /// A valid duration, as the default of a key.
    pub fn new(d: Duration) -> Self {
        Self {
            raw: format_go_duration(d),
            parsed: Some(d),
        }
    }

    /// The duration written in the text, parsed now.
    pub fn from_text(raw: impl Into<String>) -> Self {
        let raw = raw.into();
        let parsed = parse_go_duration(&raw).ok();
        Self { raw, parsed }
    }

    /// `Ok` when the text parses; the parse error otherwise.
    pub fn check(&self) -> Result<Duration, String> {
        parse_go_duration(&self.raw)
    }

    /// The parsed value. Only meaningful after validation passed; an invalid text reads as zero.
    pub fn get(&self) -> Duration {
        self.parsed.unwrap_or(Duration::ZERO)
    }

    /// The text as written.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// True when the key was written as an empty string (DM's "use the derived default").
    pub fn is_empty(&self) -> bool {
        self.raw.trim().is_empty()
    }
}

impl fmt::Debug for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.raw)
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_text(String::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_forms() {
        assert_eq!(parse_go_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(
            parse_go_duration("1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_go_duration("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            parse_go_duration("1.5h").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_go_duration("2m3.5s").unwrap(),
            Duration::from_millis(123_500)
        );
        for bad in ["", "10", "abc", "5x", "-1s", "s", "1..2s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn formats_like_go() {
        for (d, s) in [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(5400), "1h30m0s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(20), "20ms"),
        ] {
            assert_eq!(format_go_duration(d), s);
            assert_eq!(parse_go_duration(s).unwrap(), d);
        }
    }

    #[test]
    fn config_duration_keeps_bad_text_for_validation() {
        let d: ConfigDuration = serde_yaml_ng::from_str("\"5 minutes\"").unwrap();
        assert!(d.check().is_err());
        assert_eq!(d.raw(), "5 minutes");
    }
}
