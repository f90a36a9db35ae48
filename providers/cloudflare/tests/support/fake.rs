//! A stateful fake of the parts of the Cloudflare API v4 that veer uses, written
//! from the published API reference (see `../fixtures/README.md`): zone lookup by
//! name, paginated record listing, and the batch endpoint (deletes then posts in
//! one transaction; a delete of a missing id or a post of an identical record
//! fails the whole batch). It checks the bearer token on every request.
//!
//! Faults and competing writers are injected through [`State`]: 429 with
//! `Retry-After`, a 5xx, a dropped connection after the batch landed, and hooks
//! that run just before and just after a batch (another writer's change).

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use veer_provider::conformance::ApiFake;
use veer_provider::{RecordName, RecordType};
use veer_provider_cloudflare::{CloudflareConfig, CloudflareProvider, Secret};

use veer_provider_testbed::http_server::{DropConnection, Server, serve};

pub const TOKEN: &str = "cf-SECRET-token-9f8e7d6c";
pub const ZONE_ID: &str = "023e105f4ecef8ad9ca31a8372d0c353";

type Hook = Box<dyn FnOnce(&mut State) + Send>;

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: String,
    pub name: String,
    pub rtype: String,
    pub content: String,
    pub ttl: u32,
}

#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub body: Option<Value>,
}

pub struct State {
    pub token: String,
    pub zone_name: String,
    pub records: Vec<Record>,
    next_id: u64,
    /// The largest page the fake returns, whatever the client asks for.
    pub per_page_max: usize,
    /// The next N requests get 429 with this `Retry-After` (seconds).
    pub throttle: Option<(usize, u64)>,
    /// The next batch gets this 5xx status without being applied.
    pub fail_next_batch: Option<u16>,
    /// The next batch is applied, then the connection is closed without an answer.
    pub drop_next_batch_response: bool,
    /// Echo the presented token in authentication errors (a badly behaved server).
    pub echo_token_in_errors: bool,
    pub before_batch: Option<Hook>,
    pub after_batch: Option<Hook>,
    pub log: Vec<Logged>,
    pub batches: usize,
}

impl State {
    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("{:032x}", 0x00c0_ffee_0000_u64 + self.next_id)
    }

    /// Adds a record as another writer (or a person) would.
    pub fn insert(&mut self, name: &str, rtype: &str, content: &str, ttl: u32) -> String {
        let id = self.id();
        self.records.push(Record {
            id: id.clone(),
            name: name.trim_end_matches('.').into(),
            rtype: rtype.into(),
            content: content.into(),
            ttl,
        });
        id
    }

    pub fn remove(&mut self, name: &str, rtype: &str) {
        let name = name.trim_end_matches('.');
        self.records.retain(|r| !(r.name.eq_ignore_ascii_case(name) && r.rtype == rtype));
    }

    pub fn contents(&self, name: &str, rtype: &str) -> Vec<String> {
        let name = name.trim_end_matches('.');
        let mut v: Vec<String> = self
            .records
            .iter()
            .filter(|r| r.name.eq_ignore_ascii_case(name) && r.rtype == rtype)
            .map(|r| r.content.clone())
            .collect();
        v.sort();
        v
    }
}

/// The fake and the state it serves.
pub struct Fake {
    pub state: Arc<Mutex<State>>,
    pub zone: RecordName,
    pub server: Server,
}

impl Fake {
    pub fn endpoint(&self) -> String {
        format!("http://{}/client/v4", self.server.addr)
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    pub fn contents(&self, name: &RecordName, rtype: &str) -> Vec<String> {
        self.with(|s| s.contents(name.as_str(), rtype))
    }

    pub fn log(&self) -> Vec<Logged> {
        self.with(|s| s.log.clone())
    }
}

/// The back door the conformance battery writes through.
impl ApiFake for Fake {
    fn zone(&self) -> &RecordName {
        &self.zone
    }

    /// Replaces the answers of `name` (empty removes them).
    fn set_answers(&self, name: &RecordName, rtype: RecordType, values: &[&str]) {
        self.with(|s| {
            s.remove(name.as_str(), &rtype.to_string());
            for v in values {
                s.insert(name.as_str(), &rtype.to_string(), v, 60);
            }
        });
    }

    /// Replaces the TXT values at `name` (`None` removes them).
    fn set_txt(&self, name: &RecordName, text: Option<&str>) {
        self.with(|s| {
            s.remove(name.as_str(), "TXT");
            if let Some(t) = text {
                s.insert(name.as_str(), "TXT", t, 300);
            }
        });
    }
}

/// The fake and a provider pointed at it, in one call (for the conformance suite too).
pub async fn start_fake() -> (Fake, CloudflareProvider) {
    start_fake_with(|_| {}).await
}

/// As [`start_fake`], with a chance to adjust the provider's configuration.
pub async fn start_fake_with(configure: impl FnOnce(&mut CloudflareConfig)) -> (Fake, CloudflareProvider) {
    let zone = RecordName::parse("example.com.").unwrap();
    let state = Arc::new(Mutex::new(State {
        token: TOKEN.into(),
        zone_name: "example.com".into(),
        records: Vec::new(),
        next_id: 0,
        per_page_max: 100,
        throttle: None,
        fail_next_batch: None,
        drop_next_batch_response: false,
        echo_token_in_errors: false,
        before_batch: None,
        after_batch: None,
        log: Vec::new(),
        batches: 0,
    }));
    let shared = state.clone();
    let router = Router::new().fallback(move |method: Method, uri: Uri, query, headers: HeaderMap, body: Bytes| {
        let state = shared.clone();
        async move { handle(&state, method, uri, query, headers, body) }
    });
    let server = serve(router).await;
    let fake = Fake { state, zone: zone.clone(), server };
    let mut config = CloudflareConfig::new("cloudflare-test", vec![zone], Secret::new(TOKEN));
    config.endpoint = fake.endpoint();
    config.request_timeout = std::time::Duration::from_secs(5);
    configure(&mut config);
    let provider = CloudflareProvider::new(config).expect("provider");
    (fake, provider)
}

fn fixture(name: &str) -> Value {
    let text = match name {
        "error_auth" => include_str!("../fixtures/error_auth.json"),
        "error_rate_limited" => include_str!("../fixtures/error_rate_limited.json"),
        "error_record_gone" => include_str!("../fixtures/error_record_gone.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).expect("fixtures are JSON")
}

fn reply(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

fn record_json(zone_name: &str, r: &Record) -> Value {
    json!({
        "id": r.id, "zone_id": ZONE_ID, "zone_name": zone_name, "name": r.name, "type": r.rtype,
        "content": r.content, "proxiable": r.rtype != "TXT", "proxied": false, "ttl": r.ttl,
        "settings": {}, "meta": {}, "comment": "managed by veer", "tags": [],
        "created_on": "2026-01-01T05:20:00.12345Z", "modified_on": "2026-01-01T05:20:00.12345Z"
    })
}

fn handle(
    state: &Mutex<State>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = state.lock().unwrap();
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    s.log.push(Logged {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        authorization: authorization.clone(),
        body: serde_json::from_slice(&body).ok(),
    });
    if authorization.as_deref() != Some(&format!("Bearer {}", s.token)) {
        let mut body = fixture("error_auth");
        if s.echo_token_in_errors {
            body["errors"][0]["message"] =
                json!(format!("Authentication error: {}", authorization.unwrap_or_default()));
        }
        return reply(403, body);
    }
    if let Some((n, seconds)) = s.throttle.take() {
        if n > 1 {
            s.throttle = Some((n - 1, seconds));
        }
        let mut response = reply(429, fixture("error_rate_limited"));
        let h = response.headers_mut();
        h.insert("retry-after", seconds.to_string().parse().unwrap());
        h.insert("ratelimit", format!("\"default\";r=0;t={seconds}").parse().unwrap());
        h.insert("ratelimit-policy", "\"default\";q=1200;w=300".parse().unwrap());
        return response;
    }
    let segments: Vec<&str> = uri.path().trim_start_matches("/client/v4/").split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["zones"]) => {
            let wanted = query.get("name").cloned().unwrap_or_default();
            let zones: Vec<Value> = if wanted.is_empty() || wanted.eq_ignore_ascii_case(&s.zone_name) {
                vec![json!({"id": ZONE_ID, "name": s.zone_name, "status": "active", "paused": false, "type": "full",
                    "name_servers": ["bob.ns.cloudflare.com", "lola.ns.cloudflare.com"]})]
            } else {
                vec![]
            };
            let n = zones.len();
            reply(
                200,
                json!({"success": true, "errors": [], "messages": [], "result": zones,
                "result_info": {"page": 1, "per_page": 20, "count": n, "total_count": n, "total_pages": 1}}),
            )
        }
        ("GET", ["zones", ZONE_ID, "dns_records"]) => {
            let name = query.get("name").cloned().unwrap_or_default();
            let rtype = query.get("type").cloned();
            let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
            let per_page: usize =
                query.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(100).clamp(1, s.per_page_max);
            let matching: Vec<&Record> = s
                .records
                .iter()
                .filter(|r| name.is_empty() || r.name.eq_ignore_ascii_case(&name))
                .filter(|r| rtype.as_ref().is_none_or(|t| &r.rtype == t))
                .collect();
            let total = matching.len();
            let pages = total.div_ceil(per_page).max(1);
            let result: Vec<Value> = matching
                .iter()
                .skip((page - 1) * per_page)
                .take(per_page)
                .map(|r| record_json(&s.zone_name, r))
                .collect();
            let count = result.len();
            reply(
                200,
                json!({"success": true, "errors": [], "messages": [], "result": result,
                "result_info": {"page": page, "per_page": per_page, "count": count, "total_count": total, "total_pages": pages}}),
            )
        }
        ("POST", ["zones", ZONE_ID, "dns_records", "batch"]) => {
            s.batches += 1;
            if let Some(hook) = s.before_batch.take() {
                hook(&mut s);
            }
            if let Some(status) = s.fail_next_batch.take() {
                return reply(
                    status,
                    json!({"success": false, "errors": [{"code": 10001, "message": "Internal error"}], "messages": [], "result": null}),
                );
            }
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut next = s.records.clone();
            let mut deleted = Vec::new();
            for d in request["deletes"].as_array().cloned().unwrap_or_default() {
                let id = d["id"].as_str().unwrap_or_default();
                match next.iter().position(|r| r.id == id) {
                    Some(i) => deleted.push(next.remove(i)),
                    None => return reply(400, fixture("error_record_gone")),
                }
            }
            let mut posted = Vec::new();
            for p in request["posts"].as_array().cloned().unwrap_or_default() {
                let (Some(name), Some(rtype), Some(content)) =
                    (p["name"].as_str(), p["type"].as_str(), p["content"].as_str())
                else {
                    return reply(
                        400,
                        json!({"success": false, "errors": [{"code": 9000, "message": "DNS name, type and content are required"}], "messages": [], "result": null}),
                    );
                };
                if next.iter().any(|r| r.name.eq_ignore_ascii_case(name) && r.rtype == rtype && r.content == content) {
                    return reply(
                        400,
                        json!({"success": false, "errors": [{"code": 81058, "message": "An identical record already exists."}], "messages": [], "result": null}),
                    );
                }
                let id = s.id();
                let record = Record {
                    id,
                    name: name.to_string(),
                    rtype: rtype.to_string(),
                    content: content.to_string(),
                    ttl: p["ttl"].as_u64().unwrap_or(1) as u32,
                };
                next.push(record.clone());
                posted.push(record);
            }
            s.records = next;
            if let Some(hook) = s.after_batch.take() {
                hook(&mut s);
            }
            let zone_name = s.zone_name.clone();
            let mut response = reply(
                200,
                json!({"success": true, "errors": [], "messages": [], "result": {
                    "deletes": deleted.iter().map(|r| record_json(&zone_name, r)).collect::<Vec<_>>(),
                    "patches": [], "puts": [],
                    "posts": posted.iter().map(|r| record_json(&zone_name, r)).collect::<Vec<_>>(),
                }}),
            );
            if std::mem::take(&mut s.drop_next_batch_response) {
                response.extensions_mut().insert(DropConnection);
            }
            response
        }
        _ => reply(
            404,
            json!({"success": false, "errors": [{"code": 7003, "message": "Could not route to the requested path"}], "messages": [], "result": null}),
        ),
    }
}
