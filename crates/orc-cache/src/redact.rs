//! Printing Redis URLs without their passwords: [`describe_url`] fills in what `redis` assumes,
//! and the redaction itself is [`orc_redact`]'s, the one every crate uses.

use orc_redact::redact_url;

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
    fn descriptions_fill_in_port_and_database() {
        assert_eq!(
            describe_url("redis://127.0.0.1"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            describe_url("redis://user:secret@h:7000/3"),
            "redis://user:***@h:7000/3"
        );
        assert_eq!(describe_url("redis://secret@h"), "redis://***@h:6379/0");
        assert_eq!(
            describe_url("unix:///run/redis.sock"),
            "unix:///run/redis.sock"
        );
    }
}
