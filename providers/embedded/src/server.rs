//! The authoritative DNS server: a hickory-server `RequestHandler` over the [`Store`].
//!
//! hickory's in-memory authority answers whole RRsets, so weighted answers need a
//! handler of our own; a custom handler bypasses hickory's catalog, so this module
//! also does what the catalog would: EDNS echo and BADVERS, NOTIMP for other
//! opcodes, REFUSED for zones not served, SOA in negative answers, NXDOMAIN versus
//! NODATA, and truncation to the requester's UDP payload size.

use crate::store::{Store, Zone, within};
use hickory_proto::op::{Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, SOA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType as WireType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo, Server};
use hickory_server::zone_handler::MessageResponseBuilder;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use veer_provider::{Answer, RecordName, RecordType};

/// The payload size this server offers in its own EDNS record (the DNS flag day
/// 2020 value, which avoids IP fragmentation).
pub const EDNS_PAYLOAD: u16 = 1232;

/// How the server listens and answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address for both UDP and TCP; port 0 picks a free port (the same for both).
    pub listen: SocketAddr,
    /// Answers per response for weighted records; `None` gives every answer with
    /// weight > 0, in weighted-shuffle order.
    pub answers_per_response: Option<usize>,
    /// Seed of the answer-selection generator; `None` seeds from the OS.
    pub seed: Option<u64>,
    /// Idle timeout of TCP connections.
    pub tcp_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 5353)),
            answers_per_response: None,
            seed: None,
            tcp_timeout: Duration::from_secs(10),
        }
    }
}

/// A running server; dropping it stops it.
pub struct EmbeddedServer {
    addr: SocketAddr,
    _server: Server<WeightedHandler>,
}

impl std::fmt::Debug for EmbeddedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl EmbeddedServer {
    /// Binds UDP and TCP on `config.listen` and starts serving `store`. Must run
    /// inside a tokio runtime.
    pub async fn start(store: Arc<Store>, config: ServerConfig) -> std::io::Result<Self> {
        let mut last_error = None;
        // With port 0, UDP picks the port and TCP must get the same one; retry if taken.
        for _ in 0..20 {
            let udp = tokio::net::UdpSocket::bind(config.listen).await?;
            let addr = udp.local_addr()?;
            let tcp = match tokio::net::TcpListener::bind(addr).await {
                Ok(tcp) => tcp,
                Err(e) if config.listen.port() == 0 => {
                    last_error = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let rng = match config.seed {
                Some(seed) => StdRng::seed_from_u64(seed),
                None => rand::make_rng(),
            };
            let handler = WeightedHandler {
                store: store.clone(),
                rng: Mutex::new(rng),
                per_response: config.answers_per_response,
            };
            let mut server = Server::new(handler);
            server.register_socket(udp);
            server.register_listener(tcp, config.tcp_timeout, 64 * 1024);
            return Ok(Self { addr, _server: server });
        }
        Err(last_error.unwrap_or_else(|| std::io::Error::other("no port free for both UDP and TCP")))
    }

    /// The address served (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Answers queries from the store, choosing weighted answers per query.
pub struct WeightedHandler {
    store: Arc<Store>,
    rng: Mutex<StdRng>,
    per_response: Option<usize>,
}

/// A response before encoding.
struct Reply {
    metadata: Metadata,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    edns: Option<Edns>,
}

#[async_trait::async_trait]
impl RequestHandler for WeightedHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response: R) -> ResponseInfo {
        let reply = self.reply(request);
        let metadata = reply.metadata;
        let builder = MessageResponseBuilder::new(&request.queries, reply.edns.as_ref());
        let message = builder.build(metadata, reply.answers.iter(), reply.authorities.iter(), [], []);
        match response.send_response(message).await {
            Ok(info) => info,
            Err(_) => ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() }),
        }
    }
}

impl WeightedHandler {
    fn reply(&self, request: &Request) -> Reply {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        let edns = request.edns.as_ref().map(|_| {
            let mut e = Edns::new();
            e.set_max_payload(EDNS_PAYLOAD).set_version(0);
            e
        });
        let mut reply = Reply { metadata, answers: Vec::new(), authorities: Vec::new(), edns };
        let fail = |mut reply: Reply, code| {
            reply.metadata.response_code = code;
            reply
        };
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return fail(reply, ResponseCode::BADVERS);
        }
        if request.metadata.op_code != OpCode::Query {
            return fail(reply, ResponseCode::NotImp);
        }
        let [query] = request.queries.queries() else {
            return fail(reply, ResponseCode::FormErr);
        };
        if query.query_class() != DNSClass::IN {
            return fail(reply, ResponseCode::Refused);
        }
        let qname = query.name().to_string().to_ascii_lowercase();
        let qname = if qname.ends_with('.') { qname } else { format!("{qname}.") };
        let qtype = query.query_type();
        let per_response = self.per_response;
        let looked_up = self.store.with_zone_of(&qname, |zone| {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            lookup(zone, &qname, qtype, per_response, &mut rng)
        });
        let Some((code, answers, authorities)) = looked_up else {
            return fail(reply, ResponseCode::Refused);
        };
        metadata.authoritative = true;
        metadata.response_code = code;
        reply.metadata = metadata;
        reply.answers = answers;
        reply.authorities = authorities;
        self.truncate_for(request, query.original().clone(), reply)
    }

    /// Over UDP, a response larger than the requester's payload size (512 without
    /// EDNS) is replaced by an empty one with TC set, so the client retries on TCP.
    fn truncate_for(&self, request: &Request, query: hickory_proto::op::Query, mut reply: Reply) -> Reply {
        if !request.protocol().is_datagram() {
            return reply;
        }
        let limit = request.edns.as_ref().map_or(512, |e| e.max_payload().clamp(512, EDNS_PAYLOAD)) as usize;
        let mut message = Message::new(reply.metadata.id, MessageType::Response, OpCode::Query);
        message.metadata = reply.metadata;
        message.add_query(query);
        message.add_answers(reply.answers.iter().cloned());
        message.add_authorities(reply.authorities.iter().cloned());
        if let Some(edns) = &reply.edns {
            message.set_edns(edns.clone());
        }
        let size = message.to_vec().map_or(usize::MAX, |bytes| bytes.len());
        if size > limit {
            reply.metadata.truncation = true;
            reply.answers.clear();
            reply.authorities.clear();
        }
        reply
    }
}

fn wire_name(name: &RecordName) -> Name {
    Name::from_ascii(name.as_str()).expect("a RecordName is a valid DNS name")
}

fn to_ours(qtype: WireType) -> Option<RecordType> {
    match qtype {
        WireType::A => Some(RecordType::A),
        WireType::AAAA => Some(RecordType::AAAA),
        WireType::CNAME => Some(RecordType::CNAME),
        WireType::TXT => Some(RecordType::TXT),
        _ => None,
    }
}

fn rdata(rtype: RecordType, value: &str) -> Option<RData> {
    Some(match rtype {
        RecordType::A => RData::A(A(value.parse().ok()?)),
        RecordType::AAAA => RData::AAAA(AAAA(value.parse().ok()?)),
        RecordType::CNAME => RData::CNAME(CNAME(Name::from_ascii(value).ok()?)),
        RecordType::TXT => RData::TXT(TXT::new(vec![value.to_string()])),
    })
}

fn soa_record(zone: &Zone, negative: bool) -> Record {
    let c = &zone.config;
    let soa = SOA::new(
        wire_name(&c.nameservers[0]),
        wire_name(&c.hostmaster),
        zone.serial,
        c.refresh,
        c.retry,
        c.expire,
        c.negative_ttl,
    );
    // RFC 2308 §3: a negative answer's SOA carries min(SOA TTL, MINIMUM).
    let ttl = if negative { c.soa_ttl.min(c.negative_ttl) } else { c.soa_ttl };
    Record::from_rdata(wire_name(&c.apex), ttl, RData::SOA(soa))
}

fn ns_records(zone: &Zone) -> Vec<Record> {
    let c = &zone.config;
    c.nameservers
        .iter()
        .map(|ns| Record::from_rdata(wire_name(&c.apex), c.soa_ttl, RData::NS(NS(wire_name(ns)))))
        .collect()
}

/// Weighted shuffle (Efraimidis–Spirakis): each live answer draws `u^(1/w)` and
/// the largest keys come first, so the first answer is answer `i` with probability
/// `w_i / Σw`. Weight 0 never appears; set-only answers (no weight) count as 1.
pub fn weighted_order<'a>(answers: &'a [Answer], rng: &mut StdRng) -> Vec<&'a Answer> {
    let mut keyed: Vec<(f64, &Answer)> = answers
        .iter()
        .filter_map(|a| {
            let w = f64::from(a.weight.unwrap_or(1));
            (w > 0.0).then(|| {
                let u: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
                (u.powf(1.0 / w), a)
            })
        })
        .collect();
    keyed.sort_by(|x, y| y.0.total_cmp(&x.0));
    keyed.into_iter().map(|(_, a)| a).collect()
}

type Lookup = (ResponseCode, Vec<Record>, Vec<Record>);

fn lookup(zone: &Zone, qname: &str, qtype: WireType, per_response: Option<usize>, rng: &mut StdRng) -> Lookup {
    let apex = &zone.config.apex;
    let Ok(name) = RecordName::parse(qname) else {
        return (ResponseCode::NXDomain, Vec::new(), vec![soa_record(zone, true)]);
    };
    debug_assert!(within(qname, apex.as_str()));
    let at_apex = &name == apex;
    let set_records = |rtype: RecordType, rng: &mut StdRng| -> Vec<Record> {
        let Some(set) = zone.rrsets.get(&(name.clone(), rtype)) else { return Vec::new() };
        let chosen: Vec<&Answer> = match rtype {
            RecordType::A | RecordType::AAAA => {
                let order = weighted_order(&set.answers, rng);
                let n = per_response.unwrap_or(order.len()).max(1);
                order.into_iter().take(n).collect()
            }
            _ => set.live_answers().collect(),
        };
        chosen
            .into_iter()
            .filter_map(|a| rdata(rtype, &a.value))
            .map(|data| Record::from_rdata(wire_name(&name), set.ttl, data))
            .collect()
    };

    let mut answers = Vec::new();
    match qtype {
        WireType::SOA if at_apex => answers.push(soa_record(zone, false)),
        WireType::NS if at_apex => answers.extend(ns_records(zone)),
        WireType::ANY => {
            if at_apex {
                answers.push(soa_record(zone, false));
                answers.extend(ns_records(zone));
            }
            for rtype in [RecordType::A, RecordType::AAAA, RecordType::CNAME, RecordType::TXT] {
                answers.extend(set_records(rtype, rng));
            }
        }
        other => {
            if let Some(rtype) = to_ours(other) {
                answers.extend(set_records(rtype, rng));
            }
            if answers.is_empty() && other != WireType::CNAME {
                answers.extend(set_records(RecordType::CNAME, rng));
            }
        }
    }
    if !answers.is_empty() {
        // Minimal responses: no NS in the authority section of positive answers,
        // which keeps weighted answers inside small UDP payloads.
        return (ResponseCode::NoError, answers, Vec::new());
    }
    let code = if zone.name_exists(&name) { ResponseCode::NoError } else { ResponseCode::NXDomain };
    (code, Vec::new(), vec![soa_record(zone, true)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(value: &str, weight: Option<u32>) -> Answer {
        Answer { set_id: None, value: value.into(), weight }
    }

    #[test]
    fn the_default_address_is_loopback_port_5353() {
        assert_eq!(ServerConfig::default().listen, "127.0.0.1:5353".parse().unwrap());
        assert_eq!(ServerConfig::default().answers_per_response, None);
    }

    #[test]
    fn weighted_order_drops_weight_zero_and_keeps_every_other_answer() {
        let answers = [answer("a", Some(0)), answer("b", Some(1)), answer("c", Some(5)), answer("d", None)];
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..200 {
            let mut order: Vec<&str> = weighted_order(&answers, &mut rng).iter().map(|a| a.value.as_str()).collect();
            order.sort();
            assert_eq!(order, vec!["b", "c", "d"]);
        }
    }

    #[test]
    fn the_first_answer_is_chosen_in_proportion_to_weight() {
        let answers = [answer("light", Some(1)), answer("heavy", Some(9))];
        let mut rng = StdRng::seed_from_u64(2);
        let n = 20_000;
        let heavy_first = (0..n).filter(|_| weighted_order(&answers, &mut rng)[0].value == "heavy").count();
        let share = heavy_first as f64 / f64::from(n);
        assert!((share - 0.9).abs() < 0.01, "{share}");
    }
}
