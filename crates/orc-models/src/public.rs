//! Name lookups for the connector, and the rule of a client that reaches public addresses only
//! ([`crate::HttpOptions::public_only`]): every address a name resolves to is checked, and so is
//! an address written in the URL, so that a request cannot reach this machine or its private
//! network by a name that points there (SSRF).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use tower_service::Service;

/// What a lookup fails with (the connector's error type).
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Resolves names with the system's resolver; with `public_only`, keeps only the public
/// addresses and refuses a name that has none.
#[derive(Debug, Clone)]
pub(crate) struct Resolver {
    system: GaiResolver,
    public_only: bool,
}

impl Resolver {
    pub(crate) fn new(public_only: bool) -> Self {
        Resolver {
            system: GaiResolver::new(),
            public_only,
        }
    }
}

/// A connection refused because of where it would go.
#[derive(Debug, thiserror::Error)]
#[error("{host} is {address}, {kind} address: this client connects to public addresses only")]
pub(crate) struct NotPublic {
    /// The host as the URL names it.
    host: String,
    /// Where it leads.
    address: IpAddr,
    /// What kind of address that is (`a loopback`, `a private`, …).
    kind: &'static str,
}

impl Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let mut system = self.system.clone();
        let public_only = self.public_only;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = system.call(name).await?.collect();
            if !public_only {
                return Ok(all.into_iter());
            }
            let public: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| not_public(a.ip()).is_none())
                .collect();
            match (public.is_empty(), all.first()) {
                (true, Some(first)) => Err(refused(&host, first.ip())),
                _ => Ok(public.into_iter()),
            }
        })
    }
}

/// Refuses a URL whose host is an address (no lookup happens for one) that is not public.
pub(crate) fn check_literal(host: &str) -> Result<(), BoxError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) if not_public(ip).is_some() => Err(refused(host, ip)),
        _ => Ok(()),
    }
}

fn refused(host: &str, address: IpAddr) -> BoxError {
    Box::new(NotPublic {
        host: host.to_owned(),
        address,
        kind: not_public(address).unwrap_or("a non-public"),
    })
}

/// What kind of non-public address `ip` is; `None` for a public one.
pub(crate) fn not_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => not_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => not_public_v4(v4),
            None => not_public_v6(v6),
        },
    }
}

fn not_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback")
    } else if ip.is_unspecified() || a == 0 {
        Some("an unspecified")
    } else if ip.is_private() {
        Some("a private")
    } else if ip.is_link_local() {
        Some("a link-local")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT)")
    } else if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        Some("a broadcast, multicast or reserved")
    } else if ip.is_documentation() || (a == 198 && (b == 18 || b == 19)) || (a == 192 && b == 0) {
        Some("a reserved")
    } else {
        None
    }
}

fn not_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("a loopback")
    } else if ip.is_unspecified() {
        Some("an unspecified")
    } else if first & 0xfe00 == 0xfc00 {
        Some("a private (unique local)")
    } else if first & 0xffc0 == 0xfe80 {
        Some("a link-local")
    } else if ip.is_multicast() {
        Some("a multicast")
    } else if let Some(v4) = ip.to_ipv4() {
        // IPv4-compatible (::a.b.c.d) and NAT64 forms reach the IPv4 address inside.
        not_public_v4(v4)
    } else if first == 0x64 && ip.segments()[1] == 0xff9b {
        not_public_v4(Ipv4Addr::from(
            (u32::from(ip.segments()[6]) << 16) | u32::from(ip.segments()[7]),
        ))
    } else {
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        for private in [
            "127.0.0.1",
            "127.8.9.10",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            let ip: IpAddr = private.parse().unwrap();
            assert!(not_public(ip).is_some(), "{private} passed");
            assert!(check_literal(private).is_err(), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111"] {
            assert_eq!(not_public(public.parse().unwrap()), None, "{public}");
        }
        assert!(check_literal("[::1]").is_err());
        assert!(check_literal("example.com").is_ok());
        let e = check_literal("127.0.0.1").unwrap_err().to_string();
        assert_eq!(
            e,
            "127.0.0.1 is 127.0.0.1, a loopback address: this client connects to public addresses only"
        );
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused() {
        let e = Resolver::new(true)
            .call("localhost".parse().unwrap())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("localhost is "), "{e}");
        assert!(e.contains("a loopback address"), "{e}");
        let open: Vec<SocketAddr> = Resolver::new(false)
            .call("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(open.iter().all(|a| a.ip().is_loopback()) && !open.is_empty());
    }
}
