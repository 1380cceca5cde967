//! `${VAR}` substitution for statements under `-- +goose ENVSUBST ON`.
//!
//! Supports `${VAR}`, `${VAR:-default}`, `${VAR-default}` and `$VAR`. Unlike goose, which
//! substitutes an empty string for an unset variable, an unset variable without a default is an
//! error: an empty role name or password is never what the author meant.

/// Substitutes variables in `sql` using `lookup`; the error names the first unset variable.
pub fn substitute(sql: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                out.push_str(&rest[pos..]);
                return Ok(out);
            };
            let expr = &body[..end];
            let (name, default) = match expr.find(['-', ':']) {
                Some(i) if expr[i..].starts_with(":-") => (&expr[..i], Some((&expr[i + 2..], true))),
                Some(i) if expr[i..].starts_with('-') => (&expr[..i], Some((&expr[i + 1..], false))),
                _ => (expr, None),
            };
            let value = match (lookup(name), default) {
                (Some(v), Some((d, true))) if v.is_empty() => d.to_string(),
                (Some(v), _) => v,
                (None, Some((d, _))) => d.to_string(),
                (None, None) => return Err(name.to_string()),
            };
            out.push_str(&value);
            rest = &body[end + 1..];
        } else if let Some(rest_after) = after.strip_prefix('$') {
            // `$$` opens or closes a dollar-quoted body: kept as written.
            out.push_str("$$");
            rest = rest_after;
        } else {
            let len = after.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
            let starts_ok = after.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
            if len == 0 || !starts_ok {
                out.push('$');
                rest = after;
                continue;
            }
            let name = &after[..len];
            out.push_str(&lookup(name).ok_or_else(|| name.to_string())?);
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
            _ => None,
        }
    }

    #[test]
    fn forms() {
        assert_eq!(substitute("CREATE ROLE ${ROLE}", env).unwrap(), "CREATE ROLE svc");
        assert_eq!(substitute("GRANT x TO $ROLE;", env).unwrap(), "GRANT x TO svc;");
        assert_eq!(substitute("${MISSING:-dflt} ${EMPTY:-e} ${EMPTY-kept}", env).unwrap(), "dflt e ");
        assert_eq!(substitute("SELECT $1, $$x$$", env).unwrap(), "SELECT $1, $$x$$");
    }

    #[test]
    fn unset_variable_is_named() {
        assert_eq!(substitute("CREATE ROLE ${NOPE}", env).unwrap_err(), "NOPE");
        assert_eq!(substitute("x $NOPE2 y", env).unwrap_err(), "NOPE2");
    }
}
