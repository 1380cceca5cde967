//! Connection strings with their passwords hidden, for error messages, logs and reports: the one
//! place the workspace decides which part of a URL or a libpq key=value string is secret.

/// The connection string with its passwords replaced by `***`: the `user:password@` part and a
/// `password` query parameter of a URL (`postgres://`, `redis://`, ...), or the `password=`
/// value of a libpq key=value string.
///
/// One rule for where a URL's password ends: at the last `@` before the query. A password that
/// contains `@`, `:` or `/` is hidden whole, at the price of hiding part of a path that
/// contains `@` too; showing part of a password is the worse mistake.
pub fn connection_string(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return redact_conninfo(url) };
    let (main, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
    let main = match main.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => main.to_string(),
        },
        None => main.to_string(),
    };
    let query = match query.strip_prefix('?') {
        Some(q) => {
            let pairs: Vec<String> = q
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if is_secret_key(key) => format!("{key}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("?{}", pairs.join("&"))
        }
        None => String::new(),
    };
    format!("{scheme}://{main}{query}")
}

/// Whether a connection parameter holds a secret (`password`, `sslpassword`).
fn is_secret_key(key: &str) -> bool {
    key.trim().to_ascii_lowercase().ends_with("password")
}

/// Hides secret values of a libpq key=value string (`host=h password='a b' dbname=d`), keeping
/// everything else as written; values may be single-quoted and contain backslash escapes.
fn redact_conninfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let ws = rest.len() - rest.trim_start().len();
        out.push_str(&rest[..ws]);
        rest = &rest[ws..];
        if rest.is_empty() {
            return out;
        }
        let key_len = rest.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(rest.len());
        let key = &rest[..key_len];
        out.push_str(key);
        rest = &rest[key_len..];
        let before_eq = rest.len() - rest.trim_start().len();
        let Some(after_eq) = rest[before_eq..].strip_prefix('=') else { continue };
        let after_ws = after_eq.len() - after_eq.trim_start().len();
        let value_at = before_eq + 1 + after_ws;
        out.push_str(&rest[..value_at]);
        rest = &rest[value_at..];
        let value_len = conninfo_value_len(rest);
        out.push_str(if is_secret_key(key) { "***" } else { &rest[..value_len] });
        rest = &rest[value_len..];
    }
}

/// Byte length of the value at the start of `s`: a quoted value up to its closing quote, else up
/// to the next whitespace; a backslash escapes the next character in both.
fn conninfo_value_len(s: &str) -> usize {
    let quoted = s.starts_with('\'');
    let mut chars = s.char_indices().skip(usize::from(quoted));
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '\'' if quoted => return i + 1,
            c if !quoted && c.is_whitespace() => return i,
            _ => {}
        }
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(connection_string("postgres://u:p%40ss@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(connection_string("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(connection_string("host=h user=u"), "host=h user=u");
    }

    #[test]
    fn a_password_containing_at_signs_is_hidden_whole() {
        assert_eq!(connection_string("postgres://u:p@ss@w:rd@h:5432/db"), "postgres://u:***@h:5432/db");
    }

    #[test]
    fn a_password_query_parameter_is_hidden() {
        assert_eq!(
            connection_string("postgres://u@h/db?password=secret&sslmode=disable"),
            "postgres://u@h/db?password=***&sslmode=disable"
        );
        assert_eq!(
            connection_string("postgresql://u:pw@h/db?application_name=x&password=s@cret"),
            "postgresql://u:***@h/db?application_name=x&password=***"
        );
    }

    #[test]
    fn key_value_passwords_are_hidden() {
        assert_eq!(
            connection_string("host=h user=u password=secret dbname=d"),
            "host=h user=u password=*** dbname=d"
        );
        assert_eq!(
            connection_string("host=h password = 'sec ret \\' more' dbname=d"),
            "host=h password = *** dbname=d"
        );
        assert_eq!(connection_string("password=secret"), "password=***");
        assert_eq!(connection_string("user=u sslpassword=k"), "user=u sslpassword=***");
    }

    #[test]
    fn a_password_containing_at_colon_or_slash_shows_no_part_of_itself() {
        assert_eq!(connection_string("postgres://u:p@ss:w/rd@host/db"), "postgres://u:***@host/db");
        // Fragments no other part of the URL contains, so any of them showing is a leak.
        for (url, shown) in [
            ("postgres://u:P1@S2:W3/R4@host/db", "postgres://u:***@host/db"),
            ("postgres://u:A1/B2@host:5432/db", "postgres://u:***@host:5432/db"),
            ("postgres://u:X1:Y2@host/db?sslmode=disable", "postgres://u:***@host/db?sslmode=disable"),
            ("redis://:P1@S2/W3:R4@127.0.0.1:6390/0", "redis://:***@127.0.0.1:6390/0"),
        ] {
            let redacted = connection_string(url);
            assert_eq!(redacted, shown);
            for fragment in ["P1", "S2", "W3", "R4", "A1", "B2", "X1", "Y2"] {
                assert!(!redacted.contains(fragment), "{redacted} shows {fragment}");
            }
        }
    }

    #[test]
    fn a_url_without_a_password_is_shown_as_it_is() {
        assert_eq!(connection_string("postgres://svc@127.0.0.1/a@b"), "postgres://svc@127.0.0.1/a@b");
        assert_eq!(connection_string("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(connection_string("not a url"), "not a url");
    }
}
