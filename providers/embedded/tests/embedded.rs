//! The embedded server answered by real DNS queries (hickory client, raw messages,
//! dig), and its provider through the conformance battery.

use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_proto::op::{DnsResponse, Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType as WireType};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use veer_provider::conformance::{Backdoor, BackdoorFuture, Harness, OWNER};
use veer_provider::{Answer, Change, ChangeBatch, OwnershipRecord, Provider, RecordName, RecordSet, RecordType};
use veer_provider_embedded::{EmbeddedProvider, EmbeddedServer, ServerConfig, Store, ZoneConfig};

const ZONE: &str = "example.test.";

fn rn(s: &str) -> RecordName {
    RecordName::parse(s).unwrap()
}

struct StoreBackdoor(Arc<Store>);

impl Backdoor for StoreBackdoor {
    fn set_answers<'a>(&'a self, name: &'a RecordName, rtype: RecordType, values: &'a [String]) -> BackdoorFuture<'a> {
        let answers = values.iter().map(|v| Answer { set_id: None, value: v.clone(), weight: Some(1) }).collect();
        self.0.put_unchecked(name, rtype, 60, answers);
        Box::pin(async {})
    }
    fn set_txt<'a>(&'a self, name: &'a RecordName, text: Option<&'a str>) -> BackdoorFuture<'a> {
        let answers = text.map(|t| vec![Answer { set_id: None, value: t.into(), weight: None }]).unwrap_or_default();
        self.0.put_unchecked(name, RecordType::TXT, 60, answers);
        Box::pin(async {})
    }
}

async fn embedded_harness() -> Option<Harness> {
    let store = Arc::new(Store::new(vec![ZoneConfig::new(rn(ZONE))], 1));
    let provider = Arc::new(EmbeddedProvider::new("embedded", store.clone()));
    Some(Harness { provider, zone: rn(ZONE), backdoor: Arc::new(StoreBackdoor(store)), keep_alive: Arc::new(()) })
}

veer_provider::provider_battery!(embedded_harness);

/// A store with one zone, its provider, and a server on a free loopback port.
async fn serve(per_response: Option<usize>) -> (Arc<Store>, EmbeddedProvider, EmbeddedServer) {
    let store = Arc::new(Store::new(vec![ZoneConfig::new(rn(ZONE))], 100));
    let provider = EmbeddedProvider::new("embedded", store.clone());
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        answers_per_response: per_response,
        seed: Some(7),
        ..ServerConfig::default()
    };
    let server = EmbeddedServer::start(store.clone(), config).await.unwrap();
    (store, provider, server)
}

/// Publishes `answers` (value, weight) at `name` through the provider.
async fn publish(provider: &EmbeddedProvider, name: &str, answers: &[(&str, u32)], generation: u64) {
    let name = rn(name);
    let before = provider.read(&name, RecordType::A).await.unwrap();
    let answers = answers
        .iter()
        .map(|(v, w)| Answer { set_id: Some(format!("ep-{v}")), value: (*v).into(), weight: Some(*w) })
        .collect();
    let desired = RecordSet::new(name.clone(), RecordType::A, 30, answers);
    let ownership = OwnershipRecord { owner: OWNER.into(), generation, epoch: 1, policy_hash: "h".into() };
    let batch = ChangeBatch { zone: rn(ZONE), changes: vec![Change::new(before, desired, ownership)] };
    provider.apply(&batch).await.unwrap();
}

async fn udp_client(addr: SocketAddr) -> Client<TokioRuntimeProvider> {
    let stream = UdpClientStream::builder(addr, TokioRuntimeProvider::default())
        .with_timeout(Some(Duration::from_secs(5)))
        .build();
    let (client, bg) = Client::<TokioRuntimeProvider>::from_sender(stream);
    tokio::spawn(bg);
    client
}

async fn tcp_client(addr: SocketAddr) -> Client<TokioRuntimeProvider> {
    let (connect, handle) = TcpClientStream::new(addr, None, Some(Duration::from_secs(5)), TokioRuntimeProvider::new());
    let (client, bg) = Client::<TokioRuntimeProvider>::new(connect.await.unwrap(), handle);
    tokio::spawn(bg);
    client
}

async fn ask(client: &mut Client<TokioRuntimeProvider>, name: &str, rtype: WireType) -> DnsResponse {
    client.query(Name::from_str(name).unwrap(), DNSClass::IN, rtype).await.unwrap()
}

fn addresses(response: &DnsResponse) -> Vec<String> {
    response
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

fn soa_serial(response: &DnsResponse) -> u32 {
    response
        .answers
        .iter()
        .chain(response.authorities.iter())
        .find_map(|r| match &r.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
        .expect("a SOA record")
}

/// Sends `message` as one raw UDP datagram and decodes the reply.
async fn raw_udp(addr: SocketAddr, message: &Message) -> Message {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&message.to_vec().unwrap(), addr).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    let (len, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf)).await.unwrap().unwrap();
    Message::from_vec(&buf[..len]).unwrap()
}

fn query_message(name: &str, rtype: WireType, edns: Option<Edns>) -> Message {
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_str(name).unwrap(), rtype));
    if let Some(edns) = edns {
        m.set_edns(edns);
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_answers_follow_the_weights_and_weight_zero_is_never_served() {
    let (_store, provider, server) = serve(Some(1)).await;
    let weights = [("192.0.2.1", 10), ("192.0.2.2", 30), ("192.0.2.3", 60), ("192.0.2.4", 0)];
    publish(&provider, "www.example.test.", &weights, 1).await;
    let mut client = udp_client(server.local_addr()).await;
    let n = 3000;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..n {
        let response = ask(&mut client, "www.example.test.", WireType::A).await;
        let got = addresses(&response);
        assert_eq!(got.len(), 1, "one answer per response as configured");
        *counts.entry(got[0].clone()).or_default() += 1;
    }
    assert!(!counts.contains_key("192.0.2.4"), "weight 0 was served: {counts:?}");
    for (value, weight) in &weights[..3] {
        let share = counts.get(*value).copied().unwrap_or(0) as f64 / n as f64;
        let expected = f64::from(*weight) / 100.0;
        assert!((share - expected).abs() < 0.04, "{value}: {share:.3} served, {expected} expected ({counts:?})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_every_live_answer_comes_in_weighted_shuffle_order() {
    let (_store, provider, server) = serve(None).await;
    publish(&provider, "www.example.test.", &[("192.0.2.1", 1), ("192.0.2.2", 3), ("192.0.2.9", 0)], 1).await;
    let mut client = tcp_client(server.local_addr()).await;
    let n = 1000;
    let mut first_is_heavy = 0;
    for _ in 0..n {
        let got = addresses(&ask(&mut client, "www.example.test.", WireType::A).await);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, vec!["192.0.2.1", "192.0.2.2"], "all live answers, never the weight-0 one");
        first_is_heavy += usize::from(got[0] == "192.0.2.2");
    }
    let share = first_is_heavy as f64 / n as f64;
    assert!((share - 0.75).abs() < 0.06, "the heavier answer led {share:.3} of responses, 0.75 expected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_and_tcp_serve_the_same_records() {
    let (_store, provider, server) = serve(None).await;
    publish(&provider, "www.example.test.", &[("192.0.2.1", 1), ("192.0.2.2", 1)], 1).await;
    let mut udp = udp_client(server.local_addr()).await;
    let mut tcp = tcp_client(server.local_addr()).await;
    for client in [&mut udp, &mut tcp] {
        let response = ask(client, "www.example.test.", WireType::A).await;
        assert_eq!(response.response_code, ResponseCode::NoError);
        assert!(response.authoritative, "answers are authoritative");
        let mut got = addresses(&response);
        got.sort();
        assert_eq!(got, vec!["192.0.2.1", "192.0.2.2"]);
        assert_eq!(response.answers[0].ttl, 30);
        let txt = ask(client, "_veer.www.example.test.", WireType::TXT).await;
        assert_eq!(txt.answers.len(), 1, "the ownership record is served");
        assert!(txt.answers[0].data.to_string().contains("owner=veer-conformance;gen=1"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soa_serial_increments_on_every_change() {
    let (store, provider, server) = serve(None).await;
    let mut client = tcp_client(server.local_addr()).await;
    let first = soa_serial(&ask(&mut client, ZONE, WireType::SOA).await);
    assert_eq!(first, 100);
    publish(&provider, "a.example.test.", &[("192.0.2.1", 1)], 1).await;
    assert_eq!(soa_serial(&ask(&mut client, ZONE, WireType::SOA).await), 101);
    publish(&provider, "a.example.test.", &[("192.0.2.2", 1)], 2).await;
    assert_eq!(soa_serial(&ask(&mut client, ZONE, WireType::SOA).await), 102);
    assert_eq!(store.serial(&rn(ZONE)), Some(102));
    // A refused change does not bump it.
    let before = provider.read(&rn("a.example.test."), RecordType::A).await.unwrap();
    let empty = RecordSet::new(rn("a.example.test."), RecordType::A, 30, Vec::new());
    let ownership = OwnershipRecord { owner: OWNER.into(), generation: 3, epoch: 1, policy_hash: "h".into() };
    let batch = ChangeBatch { zone: rn(ZONE), changes: vec![Change::new(before, empty, ownership)] };
    assert!(provider.apply(&batch).await.is_err());
    assert_eq!(soa_serial(&ask(&mut client, ZONE, WireType::SOA).await), 102);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_and_nodata_are_told_apart_and_carry_the_soa() {
    let (_store, provider, server) = serve(None).await;
    publish(&provider, "deep.sub.example.test.", &[("192.0.2.1", 1)], 1).await;
    let mut client = udp_client(server.local_addr()).await;

    let nx = ask(&mut client, "missing.example.test.", WireType::A).await;
    assert_eq!(nx.response_code, ResponseCode::NXDomain);
    assert!(nx.answers.is_empty() && nx.authoritative);
    assert_eq!(nx.authorities.len(), 1);
    assert_eq!(nx.authorities[0].record_type(), WireType::SOA);
    assert_eq!(nx.authorities[0].ttl, 60, "negative TTL is min(SOA TTL, MINIMUM)");

    for (name, rtype) in [("deep.sub.example.test.", WireType::AAAA), ("sub.example.test.", WireType::A)] {
        let nodata = ask(&mut client, name, rtype).await;
        assert_eq!(nodata.response_code, ResponseCode::NoError, "{name} {rtype} is NODATA");
        assert!(nodata.answers.is_empty());
        assert_eq!(nodata.authorities[0].record_type(), WireType::SOA);
    }

    let ns = ask(&mut client, ZONE, WireType::NS).await;
    assert_eq!(ns.answers.len(), 1);
    assert_eq!(ns.answers[0].data.to_string(), "ns1.example.test.");
    let soa = ask(&mut client, ZONE, WireType::SOA).await;
    assert_eq!(soa.answers[0].record_type(), WireType::SOA);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_not_served_are_refused() {
    let (_store, _provider, server) = serve(None).await;
    let mut client = udp_client(server.local_addr()).await;
    for name in ["example.org.", "badexample.test.", "."] {
        let response = ask(&mut client, name, WireType::A).await;
        assert_eq!(response.response_code, ResponseCode::Refused, "{name}");
        assert!(!response.authoritative);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edns_is_echoed_and_an_unknown_version_gets_badvers() {
    let (_store, provider, server) = serve(None).await;
    publish(&provider, "www.example.test.", &[("192.0.2.1", 1)], 1).await;
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    let reply = raw_udp(server.local_addr(), &query_message("www.example.test.", WireType::A, Some(edns))).await;
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert_eq!(reply.edns.as_ref().map(|e| (e.version(), e.max_payload())), Some((0, 1232)));

    let plain = raw_udp(server.local_addr(), &query_message("www.example.test.", WireType::A, None)).await;
    assert!(plain.edns.is_none(), "no EDNS in the reply to a query without it");

    let mut v1 = Edns::new();
    v1.set_version(1);
    let reply = raw_udp(server.local_addr(), &query_message("www.example.test.", WireType::A, Some(v1))).await;
    // BADVERS and BADSIG share the extended code 16; hickory decodes it as BADSIG.
    assert_eq!(u16::from(reply.response_code), u16::from(ResponseCode::BADVERS));
    assert!(reply.answers.is_empty());
    assert_eq!(reply.edns.map(|e| e.version()), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_are_truncated_to_the_requesters_udp_payload_size() {
    let (_store, provider, server) = serve(None).await;
    let values: Vec<String> = (1..=60).map(|i| format!("198.51.100.{i}")).collect();
    let answers: Vec<(&str, u32)> = values.iter().map(|v| (v.as_str(), 1)).collect();
    publish(&provider, "big.example.test.", &answers, 1).await;

    let small = raw_udp(server.local_addr(), &query_message("big.example.test.", WireType::A, None)).await;
    assert!(small.truncation, "60 answers do not fit in 512 octets");
    assert!(small.answers.is_empty());

    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    let large = raw_udp(server.local_addr(), &query_message("big.example.test.", WireType::A, Some(edns))).await;
    assert!(!large.truncation);
    assert_eq!(large.answers.len(), 60);

    let mut tcp = tcp_client(server.local_addr()).await;
    assert_eq!(addresses(&ask(&mut tcp, "big.example.test.", WireType::A).await).len(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_opcodes_get_notimp() {
    let (_store, _provider, server) = serve(None).await;
    let mut update = query_message(ZONE, WireType::SOA, None);
    update.metadata.op_code = OpCode::Update;
    let reply = raw_udp(server.local_addr(), &update).await;
    assert_eq!(reply.response_code, ResponseCode::NotImp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_sees_the_published_answers_over_udp_and_tcp() {
    if !veer_provider_testbed::require_binary("dig", "dnsutils") {
        return;
    }
    let (_store, provider, server) = serve(None).await;
    publish(&provider, "www.example.test.", &[("192.0.2.1", 1), ("192.0.2.2", 5), ("192.0.2.3", 0)], 1).await;
    let port = server.local_addr().port().to_string();
    for transport in ["+notcp", "+tcp"] {
        let port = port.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("dig")
                .args([transport, "+short", "+time=5", "+tries=2", "@127.0.0.1", "-p", &port, "www.example.test.", "A"])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
        lines.sort();
        assert_eq!(lines, vec!["192.0.2.1", "192.0.2.2"], "dig {transport}");
    }
}
