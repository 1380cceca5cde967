//! The query's parameters (`GET /api/v1/audit/events`): the contract's filters, checked the way
//! the contract states them (`limit` 1 to 1000, default 50; `offset` at least 0; `event_outcome`
//! one of three; `detail_key` alphanumeric and paired with `detail_value`), so a bad value is
//! the client's 400 and never a database error.

use chrono::{DateTime, Datelike, Duration, Utc};

use crate::event::FieldError;

/// Page size when the client gives none.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page.
pub const MAX_LIMIT: i64 = 1000;

/// What the client asked for; every text filter is an exact match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// `event_type`.
    pub event_type: Option<String>,
    /// `event_category`.
    pub event_category: Option<String>,
    /// `event_outcome`.
    pub event_outcome: Option<String>,
    /// `severity`.
    pub severity: Option<String>,
    /// `correlation_id`.
    pub correlation_id: Option<String>,
    /// Events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Events at or before this time.
    pub until: Option<DateTime<Utc>>,
    /// `event_data ->> key = value`.
    pub detail: Option<(String, String)>,
    /// Page size.
    pub limit: i64,
    /// Events skipped.
    pub offset: i64,
}

const OUTCOMES: [&str; 3] = ["success", "failure", "pending"];

fn err(field: &str, reason: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), reason: reason.into() }
}

/// Parses the query string's pairs at time `now` (for a relative `since`). Parameters the
/// contract does not name are ignored.
pub fn parse(pairs: &[(String, String)], now: DateTime<Utc>) -> Result<Filters, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut get = |name: &str| -> Option<String> {
        let mut values = pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
        let first = values.next()?;
        if values.next().is_some() {
            errors.push(err(name, "given more than once"));
            return None;
        }
        if first.contains('\0') {
            errors.push(err(name, "contains a NUL character (U+0000)"));
            return None;
        }
        Some(first.clone())
    };
    // An empty value of a free-text parameter is no filter (as the real service reads it); one
    // the contract constrains (an enum, an integer, a pattern) must still satisfy it.
    let mut text = |name: &str| get(name).filter(|v| !v.is_empty());
    let event_type = text("event_type");
    let event_category = text("event_category");
    let severity = text("severity");
    let correlation_id = text("correlation_id");
    let since = text("since");
    let until = text("until");
    let detail_value = text("detail_value");
    let event_outcome = get("event_outcome");
    let limit = get("limit");
    let offset = get("offset");
    let detail_key = get("detail_key");

    if let Some(outcome) = &event_outcome
        && !OUTCOMES.contains(&outcome.as_str())
    {
        errors.push(err("event_outcome", format!("must be one of {}", OUTCOMES.join(", "))));
    }
    let since = since.and_then(|raw| match relative(&raw, now).or_else(|| absolute(&raw)) {
        Some(t) => Some(t),
        None => {
            errors.push(err(
                "since",
                "expected a duration back from now (e.g. 24h, 90m, 7d) or an RFC 3339 date-time",
            ));
            None
        }
    });
    let until = until.and_then(|raw| match absolute(&raw) {
        Some(t) => Some(t),
        None => {
            errors.push(err("until", "expected an RFC 3339 date-time between the years 0001 and 9999"));
            None
        }
    });
    let limit = match limit.map(|raw| raw.parse::<i64>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(Ok(n)) if n < 1 => {
            errors.push(err("limit", "must be at least 1"));
            DEFAULT_LIMIT
        }
        Some(Ok(_)) => {
            errors.push(err("limit", format!("must be at most {MAX_LIMIT}")));
            DEFAULT_LIMIT
        }
        Some(Err(_)) => {
            errors.push(err("limit", format!("must be an integer from 1 to {MAX_LIMIT}")));
            DEFAULT_LIMIT
        }
    };
    let offset = match offset.map(|raw| raw.parse::<i64>()) {
        None => 0,
        Some(Ok(n)) if n >= 0 => n,
        Some(Ok(_)) => {
            errors.push(err("offset", "must be at least 0"));
            0
        }
        Some(Err(_)) => {
            errors.push(err("offset", format!("must be an integer from 0 to {}", i64::MAX)));
            0
        }
    };
    let detail = match (detail_key, detail_value) {
        (None, None) => None,
        (Some(key), Some(value)) => {
            if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                Some((key, value))
            } else {
                errors.push(err("detail_key", "must match ^[a-zA-Z0-9_]+$"));
                None
            }
        }
        (Some(_), None) => {
            errors.push(err("detail_value", "missing: detail_key must be paired with detail_value"));
            None
        }
        (None, Some(_)) => {
            errors.push(err("detail_key", "missing: detail_value must be paired with detail_key"));
            None
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Filters {
        event_type,
        event_category,
        event_outcome,
        severity,
        correlation_id,
        since,
        until,
        detail,
        limit,
        offset,
    })
}

/// An RFC 3339 time whose UTC year has an RFC 3339 form (and so fits PostgreSQL too).
fn absolute(raw: &str) -> Option<DateTime<Utc>> {
    let t = DateTime::parse_from_rfc3339(raw).ok()?.with_timezone(&Utc);
    (1..=9999).contains(&t.year()).then_some(t)
}

/// `now` minus a duration such as `24h`, `1h30m`, `90s`, `7d` or `1.5h` (Go's duration syntax
/// plus days); `None` when it is not one or reaches before the year 0001.
fn relative(raw: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut rest = raw;
    let mut total_ms: f64 = 0.0;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let per_unit = match &rest[..unit_end] {
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            "d" => 86_400e3,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total_ms += number * per_unit;
    }
    // About 10,000 years: anything longer has no RFC 3339 year, so refuse instead of wrapping.
    if !total_ms.is_finite() || total_ms > 3.2e14 {
        return None;
    }
    let back = now.checked_sub_signed(Duration::milliseconds(total_ms as i64))?;
    (back.year() >= 1).then_some(back)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(query: &[(&str, &str)]) -> Result<Filters, Vec<String>> {
        let pairs: Vec<(String, String)> =
            query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let now = DateTime::parse_from_rfc3339("2025-12-18T12:00:00Z").unwrap().with_timezone(&Utc);
        parse(&pairs, now).map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn defaults_and_filters() {
        let f = q(&[]).unwrap();
        assert_eq!((f.limit, f.offset), (50, 0));
        let f = q(&[
            ("correlation_id", "rr-1"),
            ("event_outcome", "failure"),
            ("since", "1h30m"),
            ("until", "2025-12-18T23:59:59Z"),
            ("detail_key", "task_id"),
            ("detail_value", "t-1"),
            ("limit", "1000"),
            ("offset", "20"),
            ("event_type", ""),
            ("colour", "red"),
        ])
        .unwrap();
        assert_eq!(f.correlation_id.as_deref(), Some("rr-1"));
        assert_eq!(f.event_outcome.as_deref(), Some("failure"));
        assert_eq!(f.event_type, None, "an empty value is no filter");
        assert_eq!(f.since.unwrap().to_rfc3339(), "2025-12-18T10:30:00+00:00");
        assert_eq!(f.detail, Some(("task_id".into(), "t-1".into())));
        assert_eq!((f.limit, f.offset), (1000, 20));
        assert_eq!(
            q(&[("since", "2025-01-01T00:00:00Z")]).unwrap().since.unwrap().to_rfc3339(),
            "2025-01-01T00:00:00+00:00"
        );
        assert_eq!(q(&[("since", "7d")]).unwrap().since.unwrap().to_rfc3339(), "2025-12-11T12:00:00+00:00");
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(q(&[("limit", "0")]).unwrap_err(), ["limit: must be at least 1"]);
        assert_eq!(q(&[("limit", "1001")]).unwrap_err(), ["limit: must be at most 1000"]);
        assert_eq!(q(&[("limit", "ten")]).unwrap_err(), ["limit: must be an integer from 1 to 1000"]);
        assert_eq!(q(&[("offset", "-1")]).unwrap_err(), ["offset: must be at least 0"]);
        assert_eq!(
            q(&[("offset", "99999999999999999999")]).unwrap_err(),
            ["offset: must be an integer from 0 to 9223372036854775807"]
        );
        assert_eq!(
            q(&[("event_outcome", "ok")]).unwrap_err(),
            ["event_outcome: must be one of success, failure, pending"]
        );
        assert_eq!(
            q(&[("correlation_id", "a\0b")]).unwrap_err(),
            ["correlation_id: contains a NUL character (U+0000)"]
        );
        assert_eq!(
            q(&[("detail_key", "a-b"), ("detail_value", "x")]).unwrap_err(),
            ["detail_key: must match ^[a-zA-Z0-9_]+$"]
        );
        assert_eq!(
            q(&[("detail_key", "a")]).unwrap_err(),
            ["detail_value: missing: detail_key must be paired with detail_value"]
        );
        assert!(q(&[("since", "yesterday")]).unwrap_err()[0].starts_with("since: expected a duration"));
        assert!(q(&[("since", "99999999999h")]).is_err(), "before the year 1");
        assert!(q(&[("until", "24h")]).unwrap_err()[0].starts_with("until: expected an RFC 3339"));
        assert_eq!(q(&[("limit", "5"), ("limit", "6")]).unwrap_err(), ["limit: given more than once"]);
        // Found by schemathesis: an empty value still has to satisfy the contract's constraint.
        assert_eq!(
            q(&[("detail_key", ""), ("detail_value", "x")]).unwrap_err(),
            ["detail_key: must match ^[a-zA-Z0-9_]+$"]
        );
        assert_eq!(q(&[("limit", "")]).unwrap_err(), ["limit: must be an integer from 1 to 1000"]);
        assert_eq!(
            q(&[("event_outcome", "")]).unwrap_err(),
            ["event_outcome: must be one of success, failure, pending"]
        );
    }
}
