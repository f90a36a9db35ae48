//! A Route 53 REST XML fake that is faithful where moto is not (REFERENCE §B):
//! exact-match DELETE (name, type, set identifier, weight, TTL, values, health
//! check), all-or-nothing batches, duplicate CREATE refused, simple and weighted
//! sets never mixed, per-call limits, `Throttling` / `PriorRequestNotComplete`
//! as 400 with the XML error code, and `GetChange` PENDING before INSYNC.
//!
//! Written from the Route 53 API reference (paths under `/2013-04-01/`, the
//! `ErrorResponse` shape, the `InvalidChangeBatch` message texts); the state is
//! shared with the test so that a competing writer can act between calls.

// Shared by several test binaries, each of which uses a part of it.
#![allow(dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The operations the fake serves, for counting requests and aiming faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    ListHostedZonesByName,
    GetHostedZone,
    ListResourceRecordSets,
    ChangeResourceRecordSets,
    GetChange,
}

/// What the next request of an operation meets instead of normal service.
#[derive(Debug, Clone)]
pub enum Fault {
    /// 400 `Throttling` "Rate exceeded".
    Throttling,
    /// 400 `PriorRequestNotComplete`.
    PriorRequestNotComplete,
    /// An error status with an AWS error code, nothing applied.
    Status(u16, &'static str),
    /// The request is served (a change is applied) but the answer comes only after this delay.
    LandThenHang(Duration),
}

/// One record set as Route 53 stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub name: String,
    pub rtype: String,
    pub set_id: Option<String>,
    pub weight: Option<u32>,
    pub ttl: u32,
    /// Sorted: Route 53 compares values as a set.
    pub values: Vec<String>,
    pub health_check_id: Option<String>,
}

impl Set {
    fn key(&self) -> Key {
        (reversed(&self.name), self.rtype.clone(), self.set_id.clone().unwrap_or_default())
    }

    fn describe(&self) -> String {
        match &self.set_id {
            Some(id) => format!("[name='{}', type='{}', set-identifier='{id}']", self.name, self.rtype),
            None => format!("[name='{}', type='{}']", self.name, self.rtype),
        }
    }
}

/// Route 53's listing order: labels reversed, then type, then set identifier.
type Key = (Vec<String>, String, String);

/// A hosted zone: its name and record sets.
type Zone = (String, BTreeMap<Key, Set>);

fn reversed(name: &str) -> Vec<String> {
    name.trim_end_matches('.').rsplit('.').map(str::to_string).collect()
}

/// What one accepted `ChangeResourceRecordSets` call held.
#[derive(Debug, Clone)]
pub struct CallLog {
    pub records: usize,
    pub value_chars: usize,
    /// Distinct owner names changed (ownership TXT names folded into theirs).
    pub names: Vec<String>,
}

#[derive(Default)]
pub struct Inner {
    /// Hosted zone id → (zone name, record sets).
    zones: BTreeMap<String, Zone>,
    /// Change id → GetChange polls left before INSYNC.
    changes: HashMap<String, u32>,
    /// How many PENDING answers each new change gets.
    pub pending_polls: u32,
    faults: VecDeque<(Op, Fault)>,
    requests: BTreeMap<Op, usize>,
    pub calls: Vec<CallLog>,
    next_change: u64,
}

/// A running fake; the server stops when this is dropped.
pub struct FakeRoute53 {
    pub url: String,
    state: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeRoute53 {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub const ZONE_ID: &str = "Z0FAKE";

impl FakeRoute53 {
    /// Starts the fake on a free loopback port with one zone `example.com.` (id [`ZONE_ID`]).
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(Inner::default()));
        state.lock().unwrap().zones.insert(ZONE_ID.into(), ("example.com.".into(), BTreeMap::new()));
        let app = Router::new()
            .route("/2013-04-01/hostedzonesbyname", get(list_zones))
            .route("/2013-04-01/hostedzone/{id}", get(get_zone))
            .route("/2013-04-01/hostedzone/{id}/rrset", get(list_sets).post(change_sets))
            .route("/2013-04-01/hostedzone/{id}/rrset/", get(list_sets).post(change_sets))
            .route("/2013-04-01/change/{id}", get(get_change))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, state, server }
    }

    /// Stops serving (later connections are refused).
    pub fn stop(&self) {
        self.server.abort();
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// Queues a fault for the next request of `op`.
    pub fn fault(&self, op: Op, fault: Fault) {
        self.with(|s| s.faults.push_back((op, fault)));
    }

    /// Requests received for `op` so far (faulted ones included).
    pub fn count(&self, op: Op) -> usize {
        self.with(|s| s.requests.get(&op).copied().unwrap_or(0))
    }

    /// Every record set of the zone, in listing order.
    pub fn sets(&self) -> Vec<Set> {
        self.with(|s| s.zones[ZONE_ID].1.values().cloned().collect())
    }

    /// Writes a record set directly, as another writer (or a human) would.
    pub fn put(&self, set: Set) {
        self.with(|s| s.zones.get_mut(ZONE_ID).unwrap().1.insert(set.key(), set));
    }

    /// Removes every weighted record set of a name directly.
    pub fn remove_weighted(&self, name: &str) {
        self.with(|s| s.zones.get_mut(ZONE_ID).unwrap().1.retain(|_, set| set.name != name || set.set_id.is_none()));
    }

    pub fn calls(&self) -> Vec<CallLog> {
        self.with(|s| s.calls.clone())
    }
}

impl Inner {
    fn enter(&mut self, op: Op) -> Option<Fault> {
        *self.requests.entry(op).or_default() += 1;
        match self.faults.front() {
            Some((target, _)) if *target == op => self.faults.pop_front().map(|(_, f)| f),
            _ => None,
        }
    }
}

type Shared = State<Arc<Mutex<Inner>>>;

fn xml(status: StatusCode, body: String) -> Response {
    (status, [("content-type", "text/xml")], format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"))
        .into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn error(status: u16, code: &str, message: &str) -> Response {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    xml(
        StatusCode::from_u16(status).unwrap(),
        format!(
            "<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>{kind}</Type>\
             <Code>{code}</Code><Message>{}</Message></Error><RequestId>fake-request</RequestId></ErrorResponse>",
            escape(message)
        ),
    )
}

/// The response a non-hanging fault produces.
fn fault_response(fault: &Fault) -> Option<Response> {
    match fault {
        Fault::Throttling => Some(error(400, "Throttling", "Rate exceeded")),
        Fault::PriorRequestNotComplete => Some(error(
            400,
            "PriorRequestNotComplete",
            "The request was rejected because Route 53 was still processing a prior request.",
        )),
        Fault::Status(status, code) => Some(error(*status, code, "injected by the test")),
        Fault::LandThenHang(_) => None,
    }
}

async fn serve_with(fault: Option<Fault>, respond: impl FnOnce() -> Response) -> Response {
    match fault {
        None => respond(),
        Some(Fault::LandThenHang(delay)) => {
            let response = respond();
            tokio::time::sleep(delay).await;
            response
        }
        Some(other) => fault_response(&other).expect("non-hanging fault"),
    }
}

fn zone_xml(id: &str, name: &str, count: usize) -> String {
    format!(
        "<HostedZone><Id>/hostedzone/{id}</Id><Name>{name}</Name><CallerReference>fake-{id}</CallerReference>\
         <Config><PrivateZone>false</PrivateZone></Config><ResourceRecordSetCount>{count}</ResourceRecordSetCount></HostedZone>"
    )
}

async fn list_zones(State(state): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    let (fault, body) = {
        let mut s = state.lock().unwrap();
        let fault = s.enter(Op::ListHostedZonesByName);
        let from = q.get("dnsname").cloned().unwrap_or_default();
        let mut zones: Vec<(&String, &Zone)> = s.zones.iter().collect();
        zones.sort_by_key(|(_, (name, _))| reversed(name));
        let listed: String = zones
            .into_iter()
            .filter(|(_, (name, _))| reversed(name) >= reversed(&from))
            .map(|(id, (name, sets))| zone_xml(id, name, sets.len()))
            .collect();
        let body = format!(
            "<ListHostedZonesByNameResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
             <HostedZones>{listed}</HostedZones><DNSName>{from}</DNSName><IsTruncated>false</IsTruncated>\
             <MaxItems>100</MaxItems></ListHostedZonesByNameResponse>"
        );
        (fault, body)
    };
    serve_with(fault, || xml(StatusCode::OK, body)).await
}

async fn get_zone(State(state): Shared, Path(id): Path<String>) -> Response {
    let (fault, zone) = {
        let mut s = state.lock().unwrap();
        (s.enter(Op::GetHostedZone), s.zones.get(&id).map(|(name, sets)| zone_xml(&id, name, sets.len())))
    };
    let Some(zone) = zone else {
        return error(404, "NoSuchHostedZone", &format!("No hosted zone found with ID: {id}"));
    };
    serve_with(fault, || {
        xml(
            StatusCode::OK,
            format!(
                "<GetHostedZoneResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">{zone}\
                 <DelegationSet><NameServers><NameServer>ns-1.fake.</NameServer></NameServers></DelegationSet>\
                 </GetHostedZoneResponse>"
            ),
        )
    })
    .await
}

fn set_xml(set: &Set) -> String {
    let mut out = format!("<ResourceRecordSet><Name>{}</Name><Type>{}</Type>", escape(&set.name), set.rtype);
    if let Some(id) = &set.set_id {
        out += &format!("<SetIdentifier>{}</SetIdentifier>", escape(id));
    }
    if let Some(weight) = set.weight {
        out += &format!("<Weight>{weight}</Weight>");
    }
    out += &format!("<TTL>{}</TTL><ResourceRecords>", set.ttl);
    for value in &set.values {
        out += &format!("<ResourceRecord><Value>{}</Value></ResourceRecord>", escape(value));
    }
    out += "</ResourceRecords>";
    if let Some(hc) = &set.health_check_id {
        out += &format!("<HealthCheckId>{hc}</HealthCheckId>");
    }
    out + "</ResourceRecordSet>"
}

async fn list_sets(State(state): Shared, Path(id): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    let (fault, body) = {
        let mut s = state.lock().unwrap();
        let fault = s.enter(Op::ListResourceRecordSets);
        let Some((_, sets)) = s.zones.get(&id) else {
            return error(404, "NoSuchHostedZone", &format!("No hosted zone found with ID: {id}"));
        };
        let max: usize = q.get("maxitems").and_then(|m| m.parse().ok()).unwrap_or(300).clamp(1, 300);
        let start: Key = (
            q.get("name").map(|n| reversed(&n.to_ascii_lowercase())).unwrap_or_default(),
            q.get("type").cloned().unwrap_or_default(),
            q.get("identifier").cloned().unwrap_or_default(),
        );
        let mut from_start = sets.range(start..).map(|(_, set)| set);
        let page: Vec<&Set> = from_start.by_ref().take(max).collect();
        let next_set = from_start.next().cloned();
        let mut body = String::from(
            "<ListResourceRecordSetsResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><ResourceRecordSets>",
        );
        for set in &page {
            body += &set_xml(set);
        }
        body += "</ResourceRecordSets>";
        match next_set {
            Some(n) => {
                body += &format!("<IsTruncated>true</IsTruncated><NextRecordName>{}</NextRecordName>", escape(&n.name));
                body += &format!("<NextRecordType>{}</NextRecordType>", n.rtype);
                if let Some(id) = &n.set_id {
                    body += &format!("<NextRecordIdentifier>{}</NextRecordIdentifier>", escape(id));
                }
            }
            None => body += "<IsTruncated>false</IsTruncated>",
        }
        body += &format!("<MaxItems>{max}</MaxItems></ListResourceRecordSetsResponse>");
        (fault, body)
    };
    serve_with(fault, || xml(StatusCode::OK, body)).await
}

/// Parses the `Change` elements of a `ChangeResourceRecordSetsRequest`.
fn parse_changes(body: &str) -> Result<Vec<(String, Set)>, String> {
    let doc = roxmltree::Document::parse(body).map_err(|e| e.to_string())?;
    let child = |node: roxmltree::Node, tag: &str| -> Option<String> {
        node.children().find(|c| c.has_tag_name(tag)).and_then(|c| c.text()).map(str::to_string)
    };
    let mut changes = Vec::new();
    for change in doc.descendants().filter(|n| n.has_tag_name("Change")) {
        let action = child(change, "Action").ok_or("Change without Action")?;
        let rrset = change.children().find(|c| c.has_tag_name("ResourceRecordSet")).ok_or("no ResourceRecordSet")?;
        let mut values: Vec<String> = rrset
            .descendants()
            .filter(|n| n.has_tag_name("ResourceRecord"))
            .filter_map(|r| child(r, "Value"))
            .collect();
        values.sort();
        let name = child(rrset, "Name").ok_or("no Name")?.to_ascii_lowercase();
        let name = if name.ends_with('.') { name } else { format!("{name}.") };
        changes.push((
            action,
            Set {
                name,
                rtype: child(rrset, "Type").ok_or("no Type")?,
                set_id: child(rrset, "SetIdentifier"),
                weight: child(rrset, "Weight").map(|w| w.parse().map_err(|_| "bad Weight")).transpose()?,
                ttl: child(rrset, "TTL").ok_or("no TTL")?.parse().map_err(|_| "bad TTL")?,
                values,
                health_check_id: child(rrset, "HealthCheckId"),
            },
        ));
    }
    Ok(changes)
}

async fn change_sets(State(state): Shared, Path(id): Path<String>, body: Bytes) -> Response {
    let (fault, response) = {
        let mut s = state.lock().unwrap();
        let fault = s.enter(Op::ChangeResourceRecordSets);
        if let Some(response) = fault.as_ref().and_then(fault_response) {
            return response;
        }
        let response = apply_changes(&mut s, &id, &String::from_utf8_lossy(&body));
        (fault, response)
    };
    serve_with(fault, || response).await
}

/// Validates the whole batch against a copy of the zone, then swaps it in: all or nothing.
fn apply_changes(s: &mut Inner, zone_id: &str, body: &str) -> Response {
    let changes = match parse_changes(body) {
        Ok(c) => c,
        Err(e) => return error(400, "MalformedInput", &e),
    };
    let records: usize = changes.iter().map(|(_, set)| set.values.len()).sum();
    let value_chars: usize = changes.iter().flat_map(|(_, set)| set.values.iter()).map(|v| v.chars().count()).sum();
    if records > 1000 {
        return error(400, "InvalidChangeBatch", "[Number of records limit of 1000 exceeded.]");
    }
    if value_chars > 32_000 {
        return error(400, "InvalidChangeBatch", "[Number of characters limit of 32000 exceeded.]");
    }
    let Some((zone_name, sets)) = s.zones.get(zone_id) else {
        return error(404, "NoSuchHostedZone", &format!("No hosted zone found with ID: {zone_id}"));
    };
    let mut next = sets.clone();
    let mut problems = Vec::new();
    for (action, set) in &changes {
        let in_zone = set.name == *zone_name || set.name.ends_with(&format!(".{zone_name}"));
        if !in_zone {
            problems.push(format!("RRSet with DNS name {} is not permitted in zone {zone_name}", set.name));
            continue;
        }
        match action.as_str() {
            "DELETE" => match next.get(&set.key()) {
                None => problems
                    .push(format!("Tried to delete resource record set {} but it was not found", set.describe())),
                Some(current) if current != set => problems.push(format!(
                    "Tried to delete resource record set {} but the values provided do not match the current values",
                    set.describe()
                )),
                Some(_) => {
                    next.remove(&set.key());
                }
            },
            "CREATE" => {
                let others: Vec<&Set> = next.values().filter(|o| o.name == set.name && o.rtype == set.rtype).collect();
                let problem = if next.contains_key(&set.key()) {
                    Some(format!("Tried to create resource record set {} but it already exists", set.describe()))
                } else if set.set_id.is_some() && others.iter().any(|o| o.set_id.is_none()) {
                    Some(format!(
                        "RRSet with DNS name {}, type {}, SetIdentifier {} cannot be created as a non-weighted set \
                         exists with the same name and type.",
                        set.name,
                        set.rtype,
                        set.set_id.as_deref().unwrap_or("")
                    ))
                } else if set.set_id.is_none() && others.iter().any(|o| o.set_id.is_some()) {
                    Some(format!(
                        "RRSet with DNS name {}, type {} cannot be created as a weighted set exists with the same \
                         name and type.",
                        set.name, set.rtype
                    ))
                } else {
                    None
                };
                match problem {
                    Some(problem) => problems.push(problem),
                    None => {
                        next.insert(set.key(), set.clone());
                    }
                }
            }
            other => return error(400, "InvalidInput", &format!("unsupported action {other}")),
        }
    }
    if !problems.is_empty() {
        return error(400, "InvalidChangeBatch", &format!("[{}]", problems.join(", ")));
    }
    s.zones.get_mut(zone_id).unwrap().1 = next;
    let mut names: Vec<String> =
        changes.iter().map(|(_, set)| set.name.strip_prefix("_veer.").unwrap_or(&set.name).to_string()).collect();
    names.sort();
    names.dedup();
    s.calls.push(CallLog { records, value_chars, names });
    s.next_change += 1;
    let change_id = format!("C{:06}", s.next_change);
    s.changes.insert(change_id.clone(), s.pending_polls);
    let status = if s.pending_polls == 0 { "INSYNC" } else { "PENDING" };
    xml(
        StatusCode::OK,
        format!(
            "<ChangeResourceRecordSetsResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><ChangeInfo>\
             <Id>/change/{change_id}</Id><Status>{status}</Status><SubmittedAt>2026-11-01T00:00:00.000Z</SubmittedAt>\
             </ChangeInfo></ChangeResourceRecordSetsResponse>"
        ),
    )
}

async fn get_change(State(state): Shared, Path(id): Path<String>) -> Response {
    let (fault, status) = {
        let mut s = state.lock().unwrap();
        let fault = s.enter(Op::GetChange);
        if let Some(response) = fault.as_ref().and_then(fault_response) {
            return response;
        }
        let Some(left) = s.changes.get_mut(&id) else {
            return error(404, "NoSuchChange", &format!("A change with the specified change ID does not exist: {id}"));
        };
        let status = if *left == 0 { "INSYNC" } else { "PENDING" };
        *left = left.saturating_sub(1);
        (fault, status)
    };
    serve_with(fault, || {
        xml(
            StatusCode::OK,
            format!(
                "<GetChangeResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><ChangeInfo>\
                 <Id>/change/{id}</Id><Status>{status}</Status><SubmittedAt>2026-11-01T00:00:00.000Z</SubmittedAt>\
                 </ChangeInfo></GetChangeResponse>"
            ),
        )
    })
    .await
}
