//! `${VAR}` substitution for statements under `-- +goose ENVSUB ON` (goose spells it ENVSUB).
//!
//! Supports `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR?message}`, `${VAR:?message}`
//! and `$VAR`. Unlike goose, which substitutes an empty string for an unset variable, an unset
//! variable without a default is an error: an empty role name or password is never what the
//! author meant. Dollar-quote tags (`$$`, `$body$`) are kept as written, never read as `$body`.

use crate::lex;

/// A variable that has no value and no default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unset {
    /// The variable's name.
    pub name: String,
    /// The author's message from `${VAR?message}`, if there is one.
    pub message: Option<String>,
}

impl std::fmt::Display for Unset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.message {
            Some(m) => write!(f, "environment variable {} is not set: {m}", self.name),
            None => write!(f, "environment variable {} is not set", self.name),
        }
    }
}

/// Substitutes variables in `sql` using `lookup`; the error names the first unset variable.
pub fn substitute(sql: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, Unset> {
    let unset = |name: &str, message: Option<&str>| Unset {
        name: name.to_string(),
        message: message.map(str::to_string),
    };
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let starts_token = !out.bytes().next_back().is_some_and(lex::is_ident);
        if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                out.push_str(&rest[pos..]);
                return Ok(out);
            };
            let expr = &body[..end];
            let name_len = expr.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
            let (name, op) = expr.split_at(name_len);
            let value = lookup(name);
            let value = match op {
                "" => value.ok_or_else(|| unset(name, None))?,
                _ if op.starts_with(":-") => {
                    value.filter(|v| !v.is_empty()).unwrap_or_else(|| op[2..].to_string())
                }
                _ if op.starts_with('-') => value.unwrap_or_else(|| op[1..].to_string()),
                _ if op.starts_with(":?") => {
                    value.filter(|v| !v.is_empty()).ok_or_else(|| unset(name, Some(&op[2..])))?
                }
                _ if op.starts_with('?') => value.ok_or_else(|| unset(name, Some(&op[1..])))?,
                _ => lookup(expr).ok_or_else(|| unset(expr, None))?,
            };
            out.push_str(&value);
            rest = &body[end + 1..];
        } else if let Some(tag_len) = lex::dollar_tag(&rest.as_bytes()[pos..]).filter(|_| starts_token) {
            // `$$` or `$tag$` opens or closes a dollar-quoted body: kept as written.
            out.push_str(&rest[pos..pos + tag_len]);
            rest = &rest[pos + tag_len..];
        } else {
            let len = after.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
            let starts_ok = after.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
            if len == 0 || !starts_ok {
                out.push('$');
                rest = after;
                continue;
            }
            let name = &after[..len];
            out.push_str(&lookup(name).ok_or_else(|| unset(name, None))?);
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "ROLE" => Some("svc".into()),
            "EMPTY" => Some(String::new()),
            "body" => Some("SUBSTITUTED".into()),
            _ => None,
        }
    }

    fn unset(name: &str, message: Option<&str>) -> Unset {
        Unset { name: name.into(), message: message.map(str::to_string) }
    }

    #[test]
    fn forms() {
        assert_eq!(substitute("CREATE ROLE ${ROLE}", env).unwrap(), "CREATE ROLE svc");
        assert_eq!(substitute("GRANT x TO $ROLE;", env).unwrap(), "GRANT x TO svc;");
        assert_eq!(substitute("${MISSING:-dflt} ${EMPTY:-e} ${EMPTY-kept}", env).unwrap(), "dflt e ");
        assert_eq!(substitute("SELECT $1, $$x$$", env).unwrap(), "SELECT $1, $$x$$");
        assert_eq!(substitute("${ROLE?needed} ${EMPTY?needed}.", env).unwrap(), "svc .");
    }

    #[test]
    fn dollar_quote_tags_are_kept_as_written() {
        let sql = "CREATE FUNCTION f() RETURNS text AS $body$ SELECT '${ROLE}' $body$ LANGUAGE sql";
        assert_eq!(
            substitute(sql, env).unwrap(),
            "CREATE FUNCTION f() RETURNS text AS $body$ SELECT 'svc' $body$ LANGUAGE sql"
        );
        assert_eq!(substitute("DO $fn_1$ BEGIN END $fn_1$", env).unwrap(), "DO $fn_1$ BEGIN END $fn_1$");
        // Not a tag: a variable followed by text, and a `$` inside an identifier as lex.rs reads it.
        assert_eq!(substitute("$body; x$ROLE", env).unwrap(), "SUBSTITUTED; xsvc");
    }

    #[test]
    fn unset_variable_is_named() {
        assert_eq!(substitute("CREATE ROLE ${NOPE}", env).unwrap_err(), unset("NOPE", None));
        assert_eq!(substitute("x $NOPE2 y", env).unwrap_err(), unset("NOPE2", None));
    }

    #[test]
    fn question_mark_form_carries_the_authors_message() {
        let err = substitute("CREATE ROLE ${APP_ROLE?set APP_ROLE to the service account}", env).unwrap_err();
        assert_eq!(err, unset("APP_ROLE", Some("set APP_ROLE to the service account")));
        assert_eq!(
            err.to_string(),
            "environment variable APP_ROLE is not set: set APP_ROLE to the service account"
        );
        assert_eq!(
            substitute("${EMPTY:?must not be empty}", env).unwrap_err(),
            unset("EMPTY", Some("must not be empty"))
        );
    }
}
