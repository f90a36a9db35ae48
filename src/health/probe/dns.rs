//! The `dns` probe: the endpoint, asked over UDP for `healthCheck.query`
//! (type A, recursion desired), answers NOERROR with at least one record.
//! An endpoint that is a DNS server is healthy when it serves, not merely when
//! its port is open.

use super::{ProbeFailure, io_failure};
use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::net::UdpSocket;

/// Large enough for any UDP answer without EDNS, and for most with it.
const RESPONSE_BYTES_MAX: usize = 4096;

/// A compiled dns check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsCheck {
    /// The name asked for.
    pub query: Name,
}

impl DnsCheck {
    /// Parses the query name.
    pub fn new(query: &str) -> Result<Self, String> {
        Name::from_ascii(query).map(|query| Self { query }).map_err(|e| format!("query {query:?}: {e}"))
    }

    /// Sends one query to `addr` and waits for the matching answer (the caller
    /// bounds the wait with the policy's timeout).
    pub async fn probe(&self, addr: SocketAddr) -> Result<(), ProbeFailure> {
        let mut request = Message::query();
        request.metadata.recursion_desired = true;
        request.add_query(Query::query(self.query.clone(), RecordType::A));
        let wire = request.to_vec().map_err(|e| ProbeFailure::Unusable(format!("encode query: {e}")))?;
        let local: SocketAddr =
            if addr.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
        let socket = UdpSocket::bind(local).await.map_err(|e| io_failure(&e))?;
        // A connected socket drops datagrams from other sources and reports
        // ICMP port unreachable as a refused connection.
        socket.connect(addr).await.map_err(|e| io_failure(&e))?;
        socket.send(&wire).await.map_err(|e| io_failure(&e))?;
        let mut buffer = vec![0u8; RESPONSE_BYTES_MAX];
        loop {
            let len = socket.recv(&mut buffer).await.map_err(|e| io_failure(&e))?;
            let Ok(response) = Message::from_vec(&buffer[..len]) else {
                return Err(ProbeFailure::Dns("malformed answer".into()));
            };
            // Answers to other (earlier, timed-out) queries are not ours: keep waiting.
            if response.metadata.id != request.metadata.id || response.metadata.message_type != MessageType::Response {
                continue;
            }
            return judge(&response);
        }
    }
}

fn judge(response: &Message) -> Result<(), ProbeFailure> {
    let code = response.metadata.response_code;
    if code != ResponseCode::NoError {
        return Err(ProbeFailure::Dns(rcode_name(code)));
    }
    if response.answers.is_empty() {
        return Err(ProbeFailure::Dns(if response.metadata.truncation {
            "truncated answer".into()
        } else {
            "no answer".into()
        }));
    }
    Ok(())
}

/// The mnemonic dig prints (NXDOMAIN, SERVFAIL, REFUSED, …).
fn rcode_name(code: ResponseCode) -> String {
    format!("{code:?}").to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_codes_are_named_as_dig_names_them() {
        assert_eq!(rcode_name(ResponseCode::NXDomain), "NXDOMAIN");
        assert_eq!(rcode_name(ResponseCode::ServFail), "SERVFAIL");
        assert_eq!(rcode_name(ResponseCode::Refused), "REFUSED");
    }
}
