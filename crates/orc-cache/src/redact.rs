//! Printing Redis URLs without their passwords.

/// Query parameters that carry a password in Redis URLs (`redis+unix:///s.sock?pass=…`).
const SECRET_PARAMS: [&str; 2] = ["pass", "password"];

/// `url` with its password (the userinfo after the first `:`, or all of it when there is no `:`)
/// and any `pass=`/`password=` query value replaced by `***`. Works on text that does not parse
/// as a URL too, erring towards hiding more.
pub(crate) fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(at) => url.split_at(at + 3),
        None => ("", url),
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    // The last `@` ends the userinfo: a password may hold an unescaped `@`, `/` or `?`.
    let rest = match rest.rfind('@') {
        Some(at) => {
            match rest[..at].split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push_str(":***@");
                }
                None => out.push_str("***@"),
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

/// The URL `redis` connects to, in full (default port and database filled in), password redacted:
/// `redis://127.0.0.1:6379/0`.
pub(crate) fn describe_url(url: &str) -> String {
    let Some(mut parsed) = redis::parse_redis_url(url) else {
        return redact_url(url);
    };
    if parsed.host_str().is_some_and(|h| !h.is_empty()) {
        if parsed.port().is_none() {
            // Cannot fail: the URL has a host.
            let _ = parsed.set_port(Some(6379));
        }
        if matches!(parsed.path(), "" | "/") {
            parsed.set_path("/0");
        }
    }
    redact_url(parsed.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let cases = [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("redis://user:secret@host", "redis://user:***@host"),
            ("redis://:secret@host:1/2", "redis://:***@host:1/2"),
            ("redis://secret@host", "redis://***@host"),
            ("rediss://u:p@ss/w?rd@host/0", "rediss://u:***@host/0"),
            (
                "redis+unix:///run/r.sock?db=1&pass=secret",
                "redis+unix:///run/r.sock?db=1&pass=***",
            ),
            ("not a url user:secret@x", "not a url user:***@x"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn descriptions_fill_in_port_and_database() {
        assert_eq!(
            describe_url("redis://127.0.0.1"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            describe_url("redis://user:secret@h:7000/3"),
            "redis://user:***@h:7000/3"
        );
        assert_eq!(
            describe_url("unix:///run/redis.sock"),
            "unix:///run/redis.sock"
        );
    }
}
