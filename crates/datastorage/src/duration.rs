//! Durations written the way DataStorage's Go config writes them: `30s`, `5m`, `1h30m`, `250ms`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration that reads and writes Go's `time.Duration` text form (units `h`, `m`, `s`, `ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    /// A duration of whole seconds.
    pub const fn secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// The standard-library value.
    pub const fn get(self) -> Duration {
        self.0
    }
}

const UNITS: [(&str, u128); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut millis = self.0.as_millis();
        if millis == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in UNITS {
            if millis >= size {
                write!(f, "{}{unit}", millis / size)?;
                millis %= size;
            }
        }
        Ok(())
    }
}

impl FromStr for GoDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("invalid duration `{text}`: expected e.g. 30s, 5m, 1h30m or 250ms");
        if text == "0" {
            return Ok(Self(Duration::ZERO));
        }
        let mut rest = text;
        let mut millis: u128 = 0;
        if rest.is_empty() {
            return Err(invalid());
        }
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
            if digits == 0 {
                return Err(invalid());
            }
            let value: u128 = rest[..digits].parse().map_err(|_| invalid())?;
            rest = &rest[digits..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let size = match &rest[..unit_len] {
                "h" => 3_600_000,
                "m" => 60_000,
                "s" => 1_000,
                "ms" => 1,
                _ => return Err(invalid()),
            };
            millis = value.checked_mul(size).and_then(|v| v.checked_add(millis)).ok_or_else(invalid)?;
            rest = &rest[unit_len..];
        }
        let millis = u64::try_from(millis).map_err(|_| invalid())?;
        Ok(Self(Duration::from_millis(millis)))
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_go_durations() {
        for (text, millis, printed) in [
            ("30s", 30_000, "30s"),
            ("5m", 300_000, "5m"),
            ("1h30m", 5_400_000, "1h30m"),
            ("250ms", 250, "250ms"),
            ("90s", 90_000, "1m30s"),
            ("0", 0, "0s"),
        ] {
            let d: GoDuration = text.parse().unwrap();
            assert_eq!(d.0, Duration::from_millis(millis), "{text}");
            assert_eq!(d.to_string(), printed);
        }
    }

    #[test]
    fn rejects_what_go_would_not_read_the_same_way() {
        for text in ["", "30", "s", "5 m", "1.5s", "3d", "-1s"] {
            let err = text.parse::<GoDuration>().unwrap_err();
            assert!(err.contains("invalid duration"), "{text}: {err}");
        }
    }
}
