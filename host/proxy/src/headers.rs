//! Header hygiene: hop-by-hop headers are dropped in both directions, and `X-Forwarded-*` tell the
//! backend how the client reached Sluice, so that the `nextUri` it builds points back at Sluice.
use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderMap, HeaderName, HeaderValue};

pub use sluice_http::hop::{is_hop_by_hop, strip_hop_by_hop};

/// How the client reached Sluice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// Client address chain for `X-Forwarded-For`.
    pub for_chain: String,
    /// `http` or `https`.
    pub proto: String,
    /// Host name (no port) the client used.
    pub host: String,
    /// Port the client used.
    pub port: u16,
    /// The peer Sluice sees.
    pub client_ip: IpAddr,
    /// `Forwarded` as a trusted load balancer set it (appended to).
    pub prior_forwarded: Option<String>,
    /// `X-Real-IP` as a trusted load balancer set it (kept).
    pub prior_real_ip: Option<String>,
}

impl Forwarded {
    /// Work out the forwarded view of a request. With `trust`, values a load balancer in front of
    /// Sluice already set are kept; otherwise Sluice's own view replaces them.
    pub fn from_request(
        headers: &HeaderMap,
        remote: SocketAddr,
        local: SocketAddr,
        trust: bool,
    ) -> Self {
        Self::from_connection(headers, remote, local, trust, false)
    }

    /// [`Forwarded::from_request`] for a request that came over TLS when `secure` (its own
    /// scheme is then `https`, unless a trusted load balancer says otherwise).
    pub fn from_connection(
        headers: &HeaderMap,
        remote: SocketAddr,
        local: SocketAddr,
        trust: bool,
        secure: bool,
    ) -> Self {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let client_ip = remote.ip().to_canonical();
        let for_chain = match get("x-forwarded-for").filter(|_| trust) {
            Some(prior) if !prior.is_empty() => format!("{prior}, {client_ip}"),
            _ => client_ip.to_string(),
        };
        let proto = get("x-forwarded-proto")
            .filter(|_| trust)
            .map(|p| p.split(',').next().unwrap_or(p).trim().to_ascii_lowercase())
            .filter(|p| p == "http" || p == "https")
            .unwrap_or_else(|| if secure { "https" } else { "http" }.to_string());
        let default_port = if proto == "https" { 443 } else { 80 };
        let host_header = get("x-forwarded-host")
            .filter(|_| trust)
            .or_else(|| get("host"));
        let (host, mut port) = match host_header
            .and_then(|h| h.parse::<http::uri::Authority>().ok())
            .filter(|a| valid_host(a.host()))
        {
            Some(a) => (a.host().to_string(), a.port_u16()),
            None => (host_literal(local.ip()), Some(local.port())),
        };
        if trust {
            if let Some(p) = get("x-forwarded-port").and_then(|p| p.parse().ok()) {
                port = Some(p);
            }
        }
        let trusted = |name: &str| {
            get(name)
                .filter(|v| trust && !v.is_empty())
                .map(String::from)
        };
        Self {
            for_chain,
            proto,
            host,
            port: port.unwrap_or(default_port),
            client_ip,
            prior_forwarded: trusted("forwarded"),
            prior_real_ip: trusted("x-real-ip"),
        }
    }

    /// Set the `X-Forwarded-*`, `Forwarded` and `X-Real-IP` headers on an outgoing request.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in self.fields() {
            if let Ok(v) = HeaderValue::try_from(value) {
                headers.insert(name, v);
            }
        }
    }

    /// The same fields as [`Forwarded::apply`], written as `name: value\r\n` lines of a
    /// request head, straight into `out` (every part is a valid field value already: the
    /// prior values were header values, the host passed [`valid_host`]).
    pub fn write_fields(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let ip = self.client_ip;
        let (proto, host, port) = (&self.proto, &self.host, self.port);
        let _ = write!(
            out,
            "x-forwarded-for: {}\r\nx-forwarded-proto: {proto}\r\nx-forwarded-host: {host}\r\nx-forwarded-port: {port}\r\nforwarded: ",
            self.for_chain
        );
        if let Some(prior) = &self.prior_forwarded {
            let _ = write!(out, "{prior}, ");
        }
        let _ = match ip {
            IpAddr::V4(v4) => write!(out, "for={v4}"),
            IpAddr::V6(v6) => write!(out, "for=\"[{v6}]\""),
        };
        let _ = write!(out, ";proto={proto};host=\"{host}:{port}\"\r\nx-real-ip: ");
        let _ = match &self.prior_real_ip {
            Some(prior) => write!(out, "{prior}\r\n"),
            None => write!(out, "{ip}\r\n"),
        };
    }

    /// The fields Sluice sets on a forwarded request; a client's own are replaced (or, from a
    /// trusted balancer, extended).
    fn fields(&self) -> [(&'static str, String); 6] {
        // RFC 7239 and X-Real-IP say the same; a client's own are replaced unless trusted
        let node = match self.client_ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("\"[{v6}]\""),
        };
        let element = format!(
            "for={node};proto={};host=\"{}:{}\"",
            self.proto, self.host, self.port
        );
        [
            ("x-forwarded-for", self.for_chain.clone()),
            ("x-forwarded-proto", self.proto.clone()),
            ("x-forwarded-host", self.host.clone()),
            ("x-forwarded-port", self.port.to_string()),
            (
                "forwarded",
                match &self.prior_forwarded {
                    Some(prior) => format!("{prior}, {element}"),
                    None => element,
                },
            ),
            (
                "x-real-ip",
                self.prior_real_ip
                    .clone()
                    .unwrap_or_else(|| self.client_ip.to_string()),
            ),
        ]
    }

    /// Whether Sluice sets `name` itself on a forwarded request.
    pub fn sets(name: &HeaderName) -> bool {
        matches!(
            name.as_str(),
            "x-forwarded-for"
                | "x-forwarded-proto"
                | "x-forwarded-host"
                | "x-forwarded-port"
                | "forwarded"
                | "x-real-ip"
        )
    }

    /// The base URL clients use for Sluice, e.g. `http://gateway:8080`.
    pub fn external_base(&self) -> String {
        let default_port = if self.proto == "https" { 443 } else { 80 };
        if self.port == default_port {
            format!("{}://{}", self.proto, self.host)
        } else {
            format!("{}://{}:{}", self.proto, self.host, self.port)
        }
    }
}

/// Whether `host` (from `Host` or `X-Forwarded-Host`) is a DNS name or an IP literal: anything
/// else would make the base URL Sluice writes into answers unparsable, so the listener's own
/// address is used instead.
fn valid_host(host: &str) -> bool {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host
                    .split('.')
                    .all(|label| !label.is_empty() || host.ends_with('.'))
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        }
    }
}

fn host_literal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_host_that_is_no_host_name_gives_the_listeners_address() {
        let local = addr("127.0.0.1:8080");
        for bad in [":", "([::1]:9", "![::1]:9", "a..b", "[zz]:1", "a b"] {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(bad) {
                h.insert("host", v);
            }
            let f = Forwarded::from_request(&h, addr("10.0.0.1:1"), local, false);
            assert_eq!(f.external_base(), "http://127.0.0.1:8080", "{bad}");
        }
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("gw.example:9"));
        let f = Forwarded::from_request(&h, addr("10.0.0.1:1"), local, false);
        assert_eq!(f.external_base(), "http://gw.example:9");
        h.insert("host", HeaderValue::from_static("[::1]:9"));
        let f = Forwarded::from_request(&h, addr("10.0.0.1:1"), local, false);
        assert_eq!(f.external_base(), "http://[::1]:9");
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_with_those_connection_names() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-private".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("x-trino-user", "alice".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-trino-user"));
    }

    #[test]
    fn forwarded_from_the_host_header() {
        let mut h = HeaderMap::new();
        h.insert("host", "gateway.example:8080".parse().unwrap());
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        let f = Forwarded::from_request(&h, addr("10.1.2.3:5555"), addr("0.0.0.0:8080"), false);
        assert_eq!(f.proto, "http", "untrusted proto is replaced");
        assert_eq!(f.host, "gateway.example");
        assert_eq!(f.port, 8080);
        assert_eq!(f.for_chain, "10.1.2.3");
        assert_eq!(f.external_base(), "http://gateway.example:8080");
        // a client's own Forwarded and X-Real-IP are replaced, like X-Forwarded-*
        h.insert("forwarded", "for=6.6.6.6;proto=https".parse().unwrap());
        h.insert("x-real-ip", "6.6.6.6".parse().unwrap());
        let f = Forwarded::from_request(&h, addr("10.1.2.3:5555"), addr("0.0.0.0:8080"), false);
        let mut out = h.clone();
        f.apply(&mut out);
        assert_eq!(
            out["forwarded"],
            "for=10.1.2.3;proto=http;host=\"gateway.example:8080\""
        );
        assert_eq!(out["x-real-ip"], "10.1.2.3");
    }

    #[test]
    fn trusted_load_balancer_values_are_kept() {
        let mut h = HeaderMap::new();
        h.insert("host", "10.0.0.5:8080".parse().unwrap());
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        h.insert("x-forwarded-host", "trino.example".parse().unwrap());
        h.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        let f = Forwarded::from_request(&h, addr("10.0.0.2:5555"), addr("0.0.0.0:8080"), true);
        assert_eq!(f.external_base(), "https://trino.example");
        assert_eq!(f.for_chain, "203.0.113.9, 10.0.0.2");
        let mut out = HeaderMap::new();
        f.apply(&mut out);
        assert_eq!(out["x-forwarded-port"], "443");
        assert_eq!(out["x-forwarded-host"], "trino.example");
        // a trusted balancer's Forwarded is appended to, its X-Real-IP kept
        h.insert("forwarded", "for=203.0.113.9".parse().unwrap());
        h.insert("x-real-ip", "203.0.113.9".parse().unwrap());
        let f = Forwarded::from_request(&h, addr("10.0.0.2:5555"), addr("0.0.0.0:8080"), true);
        let mut out = HeaderMap::new();
        f.apply(&mut out);
        assert_eq!(
            out["forwarded"],
            "for=203.0.113.9, for=10.0.0.2;proto=https;host=\"trino.example:443\""
        );
        assert_eq!(out["x-real-ip"], "203.0.113.9");
    }

    #[test]
    fn no_host_header_uses_the_listener_address() {
        let f = Forwarded::from_request(
            &HeaderMap::new(),
            addr("[::1]:1"),
            addr("[::1]:9000"),
            false,
        );
        assert_eq!(f.external_base(), "http://[::1]:9000");
        assert_eq!(f.for_chain, "::1");
    }

    #[test]
    fn a_tls_connection_is_https_unless_a_trusted_balancer_says_otherwise() {
        let mut h = HeaderMap::new();
        h.insert("host", "gw.example".parse().unwrap());
        let over_tls = |h: &HeaderMap, trust| {
            Forwarded::from_connection(h, addr("10.0.0.2:5555"), addr("0.0.0.0:8443"), trust, true)
        };
        let f = over_tls(&h, false);
        assert_eq!((f.proto.as_str(), f.port), ("https", 443));
        assert_eq!(f.external_base(), "https://gw.example");
        h.insert("host", "gw.example:8443".parse().unwrap());
        assert_eq!(
            over_tls(&h, false).external_base(),
            "https://gw.example:8443"
        );
        // a client's own header is not believed; a trusted balancer's is
        h.insert("x-forwarded-proto", "http".parse().unwrap());
        assert_eq!(over_tls(&h, false).proto, "https");
        assert_eq!(over_tls(&h, true).proto, "http");
    }

    #[test]
    fn the_written_fields_are_the_applied_ones() {
        let mut prior = HeaderMap::new();
        prior.insert("x-forwarded-for", "1.2.3.4".parse().unwrap());
        prior.insert("forwarded", "for=1.2.3.4".parse().unwrap());
        prior.insert("x-real-ip", "1.2.3.4".parse().unwrap());
        prior.insert("host", "gw.example:8443".parse().unwrap());
        for (remote, trust) in [
            ("10.0.0.7:1", false),
            ("[2001:db8::1]:1", false),
            ("10.0.0.7:1", true),
        ] {
            let f = Forwarded::from_connection(
                &prior,
                addr(remote),
                addr("127.0.0.1:8080"),
                trust,
                true,
            );
            let mut applied = HeaderMap::new();
            f.apply(&mut applied);
            let mut written = Vec::new();
            f.write_fields(&mut written);
            let written = String::from_utf8(written).unwrap();
            let mut lines: Vec<(String, String)> = written
                .strip_suffix("\r\n")
                .unwrap()
                .split("\r\n")
                .map(|l| {
                    let (n, v) = l.split_once(": ").unwrap();
                    (n.to_string(), v.to_string())
                })
                .collect();
            let mut expected: Vec<(String, String)> = applied
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
                .collect();
            lines.sort();
            expected.sort();
            assert_eq!(lines, expected, "{remote} trust={trust}");
        }
    }
}
