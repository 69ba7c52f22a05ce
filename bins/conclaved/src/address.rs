//! Member addresses: `HOST:PORT` where the host is an IP address or a DNS name.
//!
//! A name is checked for form when the configuration loads but not resolved: the peer transport
//! and lease forwarding dial `http://HOST:PORT`, which resolves the name on every (re)connect.
//! So a member whose name does not resolve yet (a Kubernetes pod not scheduled yet) is retried
//! like any unreachable peer, and one that moved to a new IP address is found again. Listen
//! addresses are not `HostPort`s: a socket binds to an IP address.

use serde::{Serialize, Serializer};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest DNS name (RFC 1035 §2.3.4), without a trailing dot.
const MAX_NAME_LEN: usize = 253;
/// The longest label of a DNS name.
const MAX_LABEL_LEN: usize = 63;

/// A member's peer or client address: an IP address or a DNS name, and a port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    host: Host,
    port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Host {
    Ip(std::net::IpAddr),
    Name(String),
}

impl HostPort {
    /// Parses `HOST:PORT`: `10.0.0.1:2380`, `[fd00::1]:2380` or `conclave-0.conclave-peer:2380`.
    /// The error says what is wrong, without repeating the text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Self::checked(Host::Ip(addr.ip()), addr.port());
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(format!("no `{scheme}://` here: write HOST:PORT alone"));
        }
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err("no port: expected HOST:PORT".into());
        };
        if host.is_empty() {
            return Err("the host is empty".into());
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("port `{port}` is not a number from 1 to 65535"))?;
        if let Some(inner) = host.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or("an IPv6 address needs a closing `]`")?;
            let ip = inner
                .parse::<Ipv6Addr>()
                .map_err(|_| format!("`{inner}` in brackets is not an IPv6 address"))?;
            return Self::checked(Host::Ip(ip.into()), port);
        }
        if host.contains(':') {
            return Err("an IPv6 address must be in brackets, e.g. [fd00::1]:2380".into());
        }
        if looks_like_ipv4(host) {
            let ip =
                host.parse::<Ipv4Addr>().map_err(|_| format!("`{host}` is not an IPv4 address"))?;
            return Self::checked(Host::Ip(ip.into()), port);
        }
        check_name(host)?;
        Self::checked(Host::Name(host.to_string()), port)
    }

    fn checked(host: Host, port: u16) -> Result<Self, String> {
        if port == 0 {
            return Err("port 0 cannot be dialled: give the member's real port".into());
        }
        Ok(Self { host, port })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the host is a DNS name rather than an IP address.
    pub fn is_name(&self) -> bool {
        matches!(self.host, Host::Name(_))
    }
}

impl From<SocketAddr> for HostPort {
    fn from(addr: SocketAddr) -> Self {
        Self { host: Host::Ip(addr.ip()), port: addr.port() }
    }
}

impl fmt::Display for HostPort {
    /// `HOST:PORT` as a URL authority: an IP address exactly as `SocketAddr` prints it (so
    /// cluster ids derived from it do not change), IPv6 in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(ip) => write!(f, "{}", SocketAddr::new(*ip, self.port)),
            Host::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

impl Serialize for HostPort {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Only digits and dots: meant as an IPv4 address (a DNS name's last label is never numeric).
fn looks_like_ipv4(host: &str) -> bool {
    host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// A host name as RFC 1123 allows it: dot-separated labels of letters, digits and hyphens, none
/// empty, none starting or ending with a hyphen; an optional trailing dot.
fn check_name(host: &str) -> Result<(), String> {
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "host name is {} characters long; at most {MAX_NAME_LEN} are allowed",
            name.len()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(format!("host `{host}` has an empty label (two dots in a row?)"));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(format!(
                "host label `{label}` is {} characters long; at most {MAX_LABEL_LEN} are allowed",
                label.len()
            ));
        }
        if let Some(bad) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
            return Err(format!(
                "host `{host}` contains `{bad}`; a host name has letters, digits, `-` and `.`"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("host label `{label}` starts or ends with `-`"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> String {
        HostPort::parse(text).unwrap_or_else(|e| panic!("{text}: {e}")).to_string()
    }

    fn err(text: &str) -> String {
        HostPort::parse(text).expect_err(text)
    }

    #[test]
    fn ip_addresses_print_as_socket_addresses_do() {
        assert_eq!(ok("127.0.0.1:2380"), "127.0.0.1:2380");
        assert_eq!(ok(" 10.1.2.3:1 "), "10.1.2.3:1");
        assert_eq!(ok("[::1]:2379"), "[::1]:2379");
        assert_eq!(ok("[fd00:0::1]:2379"), "[fd00::1]:2379");
        assert!(!HostPort::parse("10.0.0.1:2380").unwrap().is_name());
    }

    #[test]
    fn dns_names_are_kept_as_written() {
        assert_eq!(ok("conclave-0.conclave-peer:2380"), "conclave-0.conclave-peer:2380");
        assert_eq!(ok("localhost:2379"), "localhost:2379");
        assert_eq!(ok("node1.example.com.:2379"), "node1.example.com.:2379");
        let name = HostPort::parse("conclave-2.conclave-peer.ns.svc.cluster.local:2380").unwrap();
        assert!(name.is_name());
        assert_eq!(name.port(), 2380);
    }

    #[test]
    fn bad_ports_are_named() {
        assert!(err("host:notaport").contains("`notaport` is not a number"));
        assert!(err("host:70000").contains("`70000`"));
        assert!(err("host:").contains("port ``"));
        assert!(err("host:0").contains("port 0"));
        assert!(err("10.0.0.1:0").contains("port 0"));
        assert!(err("conclave-0").contains("no port"));
    }

    #[test]
    fn bad_hosts_are_named() {
        assert!(err(":2380").contains("host is empty"));
        assert!(err("a..b:2380").contains("empty label"));
        assert!(err("under_score:2380").contains("contains `_`"));
        assert!(err("-lead:2380").contains("starts or ends with `-`"));
        assert!(err("http://x:2380").contains("no `http://` here"));
        assert!(err("x/y:2380").contains("contains `/`"));
        assert!(err("300.1.1.1:2380").contains("not an IPv4 address"));
        assert!(err("::1:2380").contains("in brackets"));
        assert!(err("[::1:2380").contains("closing `]`"));
        assert!(err("[nope]:2380").contains("not an IPv6 address"));
        assert!(err(&format!("{}:1", "a".repeat(64))).contains("at most 63"));
        let long = vec!["abcdefgh"; 30].join(".");
        assert!(err(&format!("{long}:1")).contains("at most 253"));
    }
}
