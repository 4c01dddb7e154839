//! Which backend a state URL names, and how to print a URL without its password.

use std::path::PathBuf;

use crate::{Error, Result};

/// Query parameters that carry a password (`postgres://h/db?password=…`, `redis+unix:///s?pass=…`).
const SECRET_PARAMS: [&str; 2] = ["pass", "password"];

/// The backend a URL names, with what it needs to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A SQLite file.
    SqliteFile(PathBuf),
    /// A private in-memory SQLite database (`sqlite::memory:`), gone when the store is dropped.
    SqliteMemory,
    /// A PostgreSQL server; the URL as given.
    Postgres,
    /// A Redis server; the URL as given.
    Redis,
}

/// Sorts `url` into a backend by its scheme. Only SQLite URLs are parsed any further here; the
/// PostgreSQL and Redis clients parse their own.
pub(crate) fn target(url: &str) -> Result<Target> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: redact_url(url),
        reason: reason.to_owned(),
    };
    let Some((scheme, _)) = url.split_once(':') else {
        return Err(invalid("it has no scheme"));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "sqlite" => sqlite_target(url).map_err(|reason| invalid(&reason)),
        "postgres" | "postgresql" => Ok(Target::Postgres),
        "redis" | "rediss" | "redis+unix" | "unix" => Ok(Target::Redis),
        "" => Err(invalid("it has no scheme")),
        other => Err(invalid(&format!(
            "unknown scheme `{other}`: orc keeps its state in sqlite, postgres or redis"
        ))),
    }
}

/// `sqlite:///abs/path`, `sqlite://rel/path`, `sqlite:rel/path` or `sqlite::memory:`.
fn sqlite_target(url: &str) -> Result<Target, String> {
    let rest = &url["sqlite:".len()..];
    if rest == ":memory:" || rest == "//:memory:" {
        return Ok(Target::SqliteMemory);
    }
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.contains('?') || path.contains('#') {
        return Err(
            "SQLite state URLs take no query string: every setting comes from the options"
                .to_owned(),
        );
    }
    if path.is_empty() || path.ends_with('/') {
        return Err("it names no file".to_owned());
    }
    Ok(Target::SqliteFile(PathBuf::from(path)))
}

/// `url` with its password (the userinfo after the first `:`, or all of it when there is no `:`)
/// and any `pass=`/`password=` query value replaced by `***`. Works on text that does not parse
/// as a URL too, erring towards hiding more.
pub fn redact_url(url: &str) -> String {
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
                None => out.push_str(&rest[..at + 1]),
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

/// The password in `url`, when it has one, so that messages from a client library can be
/// scrubbed of it.
pub(crate) fn password(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let at = rest.rfind('@')?;
    let (_, password) = rest[..at].split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

/// `message` with every occurrence of the URL's password replaced by `***`.
pub(crate) fn scrub(message: String, url: &str) -> String {
    match password(url) {
        Some(password) => message.replace(&password, "***"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn passwords_never_show() {
        let cases = [
            (
                "postgres://u:secret@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            ("postgres://u@h/db", "postgres://u@h/db"),
            (
                "postgresql://h/db?user=u&password=secret&sslmode=require",
                "postgresql://h/db?user=u&password=***&sslmode=require",
            ),
            ("redis://:secret@host:1/2", "redis://:***@host:1/2"),
            ("rediss://u:p@ss/w?rd@host/0", "rediss://u:***@host/0"),
            (
                "sqlite:///var/lib/orc/state.db",
                "sqlite:///var/lib/orc/state.db",
            ),
            ("mysql://root:hunter2@db/x", "mysql://root:***@db/x"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
            if let Some(password) = password(url) {
                assert!(!redact_url(url).contains(&password), "{url}");
            }
        }
        assert_eq!(
            scrub(
                "login for u:secret failed".to_owned(),
                "postgres://u:secret@h/db"
            ),
            "login for u:*** failed"
        );
    }

    #[test]
    fn schemes_pick_the_backend() {
        assert_eq!(
            target("sqlite:///var/lib/orc/state.db").ok(),
            Some(Target::SqliteFile("/var/lib/orc/state.db".into()))
        );
        assert_eq!(
            target("sqlite://data/state.db").ok(),
            Some(Target::SqliteFile("data/state.db".into()))
        );
        assert_eq!(
            target("sqlite:state.db").ok(),
            Some(Target::SqliteFile("state.db".into()))
        );
        assert_eq!(target("sqlite::memory:").ok(), Some(Target::SqliteMemory));
        assert_eq!(target("postgres://h/db").ok(), Some(Target::Postgres));
        assert_eq!(target("postgresql://h/db").ok(), Some(Target::Postgres));
        assert_eq!(target("redis://h").ok(), Some(Target::Redis));
        for bad in [
            "",
            "state.db",
            "mysql://root:hunter2@db/x",
            "sqlite://",
            "sqlite:///tmp/",
            "sqlite:///tmp/s.db?mode=ro",
        ] {
            let e = target(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid state URL"), "{bad}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
