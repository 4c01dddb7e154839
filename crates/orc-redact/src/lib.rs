//! Printing connection URLs without their secrets: the one implementation orc-cache (Redis
//! URLs), orc-state (SQLite, PostgreSQL and Redis URLs) and orc-models (proxy URLs) share, and
//! every message, error and `orc config show` line that names a URL goes through.
//!
//! A leaf with no dependencies, so that both stores can reach it without reaching each other's
//! database clients.
//!
//! ```
//! use orc_redact::redact_url;
//!
//! assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
//! assert_eq!(redact_url("redis://h/0?password=secret"), "redis://h/0?password=***");
//! assert_eq!(orc_redact::origin("http://u:secret@proxy:3128/"), "http://proxy:3128");
//! ```

/// Query parameters that carry a secret: a password (`postgres://h/db?password=…`,
/// `redis+unix:///s?pass=…`, libpq's `sslpassword`) or a token or key (`https://h/v1?api_key=…`
/// in a model's base URL that `orc config show` prints).
const SECRET_PARAMS: [&str; 10] = [
    "pass",
    "password",
    "sslpassword",
    "token",
    "access_token",
    "api_key",
    "apikey",
    "key",
    "secret",
    "client_secret",
];

/// Schemes whose lone userinfo (`redis://secret@host`, no `:`) is hidden: Redis before 6 had
/// passwords and no user names, so there a lone userinfo is most often a password written
/// without its leading `:`. Elsewhere (`postgres://u@h/db`) it is a user name, and shown.
const PASSWORD_ONLY_SCHEMES: [&str; 4] = ["redis", "rediss", "redis+unix", "unix"];

/// `url` with its password (the userinfo after the first `:`; in a Redis URL, a userinfo without
/// `:` too) and the value of any query parameter that carries a password, token or key
/// (`password=`, `token=`, `api_key=`, …) replaced by `***`. Works on text that does
/// not parse as a URL too, erring towards hiding more.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(at) => url.split_at(at + 3),
        None => ("", url),
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    let rest = match userinfo_end(rest) {
        Some(at) => {
            match rest[..at].split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push_str(":***@");
                }
                None if lone_userinfo_is_a_password(scheme) => out.push_str("***@"),
                None => out.push_str(&rest[..=at]),
            }
            &rest[at + 1..]
        }
        None => rest,
    };
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    out.push_str(path);
    if let Some(query) = query {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((key, _)) if SECRET_PARAMS.iter().any(|s| key.eq_ignore_ascii_case(s)) => {
                    out.push_str(key);
                    out.push_str("=***");
                }
                _ => out.push_str(pair),
            }
        }
    }
    out
}

/// The password in `url`'s userinfo (after the first `:`), when it has one, so that messages from
/// a client library can be scrubbed of it.
pub fn password(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let at = userinfo_end(rest)?;
    let (_, password) = rest[..at].split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

/// `message` with every occurrence of `url`'s password replaced by `***`: as written in the URL
/// and, when it is percent-encoded (`p%40ss`), as a client library that decoded it would quote it
/// (`p@ss`).
pub fn scrub(message: String, url: &str) -> String {
    let Some(password) = password(url) else {
        return message;
    };
    let message = message.replace(&password, "***");
    match percent_decoded(&password) {
        Some(decoded) if !decoded.is_empty() && decoded != password => {
            message.replace(&decoded, "***")
        }
        _ => message,
    }
}

/// Where `url` connects to, for messages about the connection itself (a proxy that cannot be
/// used, say): `scheme://host:port`, without the userinfo (a proxy's user name is a credential
/// too), the path or the query. Text without `://` is shown as [`redact_url`] shows it.
pub fn origin(url: &str) -> String {
    let Some(at) = url.find("://") else {
        return redact_url(url);
    };
    let (scheme, rest) = url.split_at(at + 3);
    let rest = match userinfo_end(rest) {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    format!("{scheme}{}", &rest[..end])
}

/// `text` with its `%XX` escapes decoded, when it has any and they decode to UTF-8.
fn percent_decoded(text: &str) -> Option<String> {
    if !text.contains('%') {
        return None;
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Where the userinfo of the text after `scheme://` ends: its last `@`, since a password may hold
/// an unescaped `@`, `/` or `?`.
fn userinfo_end(after_scheme: &str) -> Option<usize> {
    after_scheme.rfind('@')
}

/// Whether a userinfo without `:` is hidden in a URL that starts with `scheme` (`redis://`; empty
/// for text that is no URL, where hiding more is the safe side).
fn lone_userinfo_is_a_password(scheme: &str) -> bool {
    let name = scheme.strip_suffix("://").unwrap_or(scheme);
    name.is_empty()
        || PASSWORD_ONLY_SCHEMES
            .iter()
            .any(|s| name.eq_ignore_ascii_case(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every secret below is `secret`, `hunter2` or `p@ss/w?rd`; none may survive redaction.
    const CASES: [(&str, &str); 20] = [
        (
            "postgres://u:secret@h:5432/db",
            "postgres://u:***@h:5432/db",
        ),
        ("postgres://u@h/db", "postgres://u@h/db"),
        (
            "postgresql://h/db?user=u&password=secret&sslmode=require",
            "postgresql://h/db?user=u&password=***&sslmode=require",
        ),
        (
            "postgres://h/db?PASSWORD=secret",
            "postgres://h/db?PASSWORD=***",
        ),
        ("mysql://root:hunter2@db/x", "mysql://root:***@db/x"),
        (
            "sqlite:///var/lib/orc/state.db",
            "sqlite:///var/lib/orc/state.db",
        ),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://user:secret@host", "redis://user:***@host"),
        ("redis://:secret@host:1/2", "redis://:***@host:1/2"),
        ("redis://secret@host", "redis://***@host"),
        ("REDISS://secret@host", "REDISS://***@host"),
        ("rediss://u:p@ss/w?rd@host/0", "rediss://u:***@host/0"),
        (
            "redis+unix:///run/r.sock?db=1&pass=secret",
            "redis+unix:///run/r.sock?db=1&pass=***",
        ),
        (
            "unix:///run/r.sock?password=secret",
            "unix:///run/r.sock?password=***",
        ),
        ("not a url user:secret@x", "not a url user:***@x"),
        ("secret@x", "***@x"),
        (
            "postgres://u@h/db?sslmode=verify-full&sslpassword=secret",
            "postgres://u@h/db?sslmode=verify-full&sslpassword=***",
        ),
        (
            "https://api.example.com/v1?api_key=secret&model=m",
            "https://api.example.com/v1?api_key=***&model=m",
        ),
        (
            "http://h:8000/v1?Token=hunter2&access_token=secret",
            "http://h:8000/v1?Token=***&access_token=***",
        ),
        ("http://h/x?key=secret", "http://h/x?key=***"),
    ];

    #[test]
    fn passwords_never_show() {
        for (url, want) in CASES {
            let redacted = redact_url(url);
            assert_eq!(redacted, want, "{url}");
            for secret in ["secret", "hunter2", "p@ss/w?rd"] {
                assert!(!redacted.contains(secret), "{url} → {redacted}");
            }
            if let Some(password) = password(url) {
                assert!(!redacted.contains(&password), "{url}");
            }
        }
    }

    #[test]
    fn passwords_are_found_and_scrubbed_from_messages() {
        assert_eq!(
            password("postgres://u:secret@h/db").as_deref(),
            Some("secret")
        );
        assert_eq!(
            password("rediss://u:p@ss/w?rd@host/0").as_deref(),
            Some("p@ss/w?rd")
        );
        assert_eq!(password("postgres://u@h/db"), None);
        assert_eq!(password("redis://:@h"), None);
        assert_eq!(password("no url at all"), None);
        assert_eq!(
            scrub(
                "login for u:secret failed".to_owned(),
                "postgres://u:secret@h/db"
            ),
            "login for u:*** failed"
        );
        assert_eq!(
            scrub("nothing to hide".to_owned(), "postgres://u@h/db"),
            "nothing to hide"
        );
        // A client that decoded the password quotes it decoded.
        assert_eq!(
            scrub(
                "auth failed for p@ss/w and for p%40ss%2Fw".to_owned(),
                "redis://:p%40ss%2Fw@h/0"
            ),
            "auth failed for *** and for ***"
        );
        assert_eq!(percent_decoded("100%"), Some("100%".to_owned()));
        assert_eq!(percent_decoded("%zz%4"), Some("%zz%4".to_owned()));
        assert_eq!(percent_decoded("%ff"), None);
    }

    #[test]
    fn origins_show_no_credentials() {
        for (url, want) in [
            ("socks5://user:hunter2@127.0.0.1:9", "socks5://127.0.0.1:9"),
            ("http://secret@proxy.local:3128/", "http://proxy.local:3128"),
            ("http://proxy.local", "http://proxy.local"),
            (
                "https://u:p@ss/w?rd@h:8443/path?token=secret",
                "https://h:8443",
            ),
            ("http://h:80?api_key=secret#frag", "http://h:80"),
            ("not a url user:secret@x", "not a url user:***@x"),
        ] {
            let shown = origin(url);
            assert_eq!(shown, want, "{url}");
            for secret in ["secret", "hunter2", "p@ss"] {
                assert!(!shown.contains(secret), "{url} → {shown}");
            }
        }
    }
}
