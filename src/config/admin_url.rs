//! `admin.advertiseUrl`: where other replicas reach this replica's admin API.
//! Parsed once, at config load, so the leader's fetches cannot fail on syntax.

use std::fmt;

/// A plain-HTTP admin API base URL: `http://HOST[:PORT][/PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminUrl {
    /// Host name or IP address, without IPv6 brackets.
    pub host: String,
    /// TCP port (80 when the URL names none).
    pub port: u16,
    /// The `Host` header to send: the URL's authority as written.
    pub authority: String,
    /// Path prefix before `/v1/…`, without a trailing slash (usually empty).
    pub prefix: String,
}

/// Why an admin URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminUrlError {
    /// Not `http://`.
    #[error("must start with http:// (the admin API serves plain HTTP), e.g. http://10.0.0.5:9090")]
    Scheme,
    /// No host, a bad port, user info or characters that cannot go on the wire.
    #[error("`{0}` is not a valid HOST[:PORT], e.g. http://10.0.0.5:9090 or http://[fd00::5]:9090")]
    Authority(String),
}

impl AdminUrl {
    /// Parses `http://HOST[:PORT][/PREFIX]`; IPv6 hosts in brackets.
    pub fn parse(text: &str) -> Result<Self, AdminUrlError> {
        let rest = text
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
            .map(|_| &text[7..])
            .ok_or(AdminUrlError::Scheme)?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let bad = || AdminUrlError::Authority(authority.to_string());
        let wire_safe = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
        if authority.is_empty() || authority.contains('@') || !wire_safe(authority) || !wire_safe(path) {
            return Err(bad());
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed.split_once(']').ok_or_else(bad)?;
                host.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
            None if authority.ends_with(']') || !authority.contains(':') => 80,
            None => return Err(bad()),
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_string(),
            port,
            authority: authority.to_string(),
            prefix: path.trim_end_matches('/').to_string(),
        })
    }
}

impl fmt::Display for AdminUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_ipv6_and_prefix_are_understood() {
        let url = AdminUrl::parse("http://10.0.0.5:9090").unwrap();
        assert_eq!((url.host.as_str(), url.port, url.prefix.as_str()), ("10.0.0.5", 9090, ""));
        let url = AdminUrl::parse("HTTP://[fd00::5]:9091/veer/").unwrap();
        assert_eq!((url.host.as_str(), url.port, url.prefix.as_str()), ("fd00::5", 9091, "/veer"));
        assert_eq!(url.to_string(), "http://[fd00::5]:9091/veer");
        assert_eq!(AdminUrl::parse("http://veer-0.veer").unwrap().port, 80);
    }

    #[test]
    fn other_schemes_and_broken_authorities_are_refused() {
        assert_eq!(AdminUrl::parse("https://a:1"), Err(AdminUrlError::Scheme));
        assert_eq!(AdminUrl::parse("10.0.0.5:9090"), Err(AdminUrlError::Scheme));
        for bad in [
            "http://",
            "http://:9090",
            "http://a:0",
            "http://a:x",
            "http://u:p@a:1",
            "http://fd00::5:1",
            "http://a b:1",
        ] {
            assert!(matches!(AdminUrl::parse(bad), Err(AdminUrlError::Authority(_))), "{bad}");
        }
    }
}
