//! Which backend a state URL names. Printing a URL without its password is [`orc_redact`]'s
//! (the one implementation orc-cache uses too), re-exported here for the store's messages.

use std::path::PathBuf;

pub use orc_redact::redact_url;
pub(crate) use orc_redact::scrub;

use crate::{Error, Result};

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
            if let Some(password) = orc_redact::password(url) {
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
