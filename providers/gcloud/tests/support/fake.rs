//! A stateful fake of the Cloud DNS v1 API, Google's OAuth 2.0 token endpoint
//! (JWT bearer grant, verified with the test key's public half) and the metadata
//! server, written from the published references (see `../fixtures/README.md`).
//!
//! `changes.create` is all-or-nothing: every deletion must equal a current record
//! set exactly (else `412 conditionNotMet`), and no addition may find an existing
//! set (else `409 alreadyExists`). Changes start `pending` and turn `done` after
//! a configurable number of `changes.get` polls. Faults: 429 or 403
//! `rateLimitExceeded`, a 5xx, a dropped connection after a change landed, and a
//! hook that runs before a change (another writer).

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use veer_provider::conformance::ApiFake;
use veer_provider::{RecordName, RecordType};
use veer_provider_gcloud::{Clock, GcloudConfig, GcloudCredential, GcloudProvider, ServiceAccountKey};

use veer_provider_testbed::http_server::{DropConnection, Server, serve};

pub const PROJECT: &str = "veer-test-project";
pub const MANAGED_ZONE: &str = "example-com";
pub const KEY_FILE: &str = include_str!("../fixtures/test_service_account.json");
const PUBLIC_KEY: &str = include_str!("../fixtures/test_service_account_public.pem");
pub const CLIENT_EMAIL: &str = "veer-dns@veer-test-project.iam.gserviceaccount.com";

type Hook = Box<dyn FnOnce(&mut State) + Send>;

#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub metadata_flavor: Option<String>,
    pub body: Option<Value>,
}

pub struct State {
    pub rrsets: Vec<Value>,
    /// Change id → (change JSON, polls left before `done`).
    pub changes: HashMap<String, (Value, u32)>,
    /// Polls a new change needs before it is `done`; `u32::MAX` never completes.
    pub polls_until_done: u32,
    pub page_size_max: usize,
    pub issued: Vec<String>,
    pub expires_in: u64,
    /// The token endpoint URL the assertions must name as audience.
    pub token_uri: String,
    pub throttle: Option<(usize, u64)>,
    /// Throttle with 403 `rateLimitExceeded` instead of 429.
    pub throttle_as_403: bool,
    pub fail_next_change: Option<u16>,
    pub drop_next_change_response: bool,
    pub before_change: Option<Hook>,
    pub log: Vec<Logged>,
}

impl State {
    fn find(&self, name: &str, rtype: &str) -> Option<usize> {
        self.rrsets.iter().position(|s| s["name"].as_str() == Some(name) && s["type"].as_str() == Some(rtype))
    }

    /// Replaces a record set as another writer would (plain rrdatas, no routing policy).
    pub fn put_plain(&mut self, name: &str, rtype: &str, rrdatas: &[String], ttl: u32) {
        if let Some(i) = self.find(name, rtype) {
            self.rrsets.remove(i);
        }
        if !rrdatas.is_empty() {
            self.rrsets.push(
                json!({"kind": "dns#resourceRecordSet", "name": name, "type": rtype, "ttl": ttl, "rrdatas": rrdatas}),
            );
        }
    }

    pub fn get(&self, name: &str, rtype: &str) -> Option<Value> {
        self.find(name, rtype).map(|i| self.rrsets[i].clone())
    }
}

pub struct Fake {
    pub state: Arc<Mutex<State>>,
    pub zone: RecordName,
    pub server: Server,
    pub now: Arc<Mutex<Instant>>,
}

impl Fake {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    pub fn rrset(&self, name: &RecordName, rtype: &str) -> Option<Value> {
        self.with(|s| s.get(name.as_str(), rtype))
    }

    pub fn log(&self) -> Vec<Logged> {
        self.with(|s| s.log.clone())
    }

    pub fn advance(&self, by: Duration) {
        *self.now.lock().unwrap() += by;
    }
}

/// The back door the conformance battery writes through.
impl ApiFake for Fake {
    fn zone(&self) -> &RecordName {
        &self.zone
    }

    /// Replaces the answers of `name` (empty removes the set).
    fn set_answers(&self, name: &RecordName, rtype: RecordType, values: &[&str]) {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        self.with(|s| s.put_plain(name.as_str(), &rtype.to_string(), &values, 60));
    }

    /// Replaces the TXT values at `name` (`None` removes the set).
    fn set_txt(&self, name: &RecordName, text: Option<&str>) {
        let values: Vec<String> = text.map(|t| format!("\"{t}\"")).into_iter().collect();
        self.with(|s| s.put_plain(name.as_str(), "TXT", &values, 300));
    }
}

pub async fn start_fake() -> (Fake, GcloudProvider) {
    start_fake_with(|_| {}).await
}

/// The fake and a provider pointed at it (service-account key, test clock), in one call.
pub async fn start_fake_with(configure: impl FnOnce(&mut GcloudConfig)) -> (Fake, GcloudProvider) {
    let zone = RecordName::parse("example.com.").unwrap();
    let state = Arc::new(Mutex::new(State {
        rrsets: Vec::new(),
        changes: HashMap::new(),
        polls_until_done: 0,
        page_size_max: 100,
        issued: Vec::new(),
        expires_in: 3599,
        token_uri: String::new(),
        throttle: None,
        throttle_as_403: false,
        fail_next_change: None,
        drop_next_change_response: false,
        before_change: None,
        log: Vec::new(),
    }));
    let shared = state.clone();
    let router = Router::new().fallback(move |method: Method, uri: Uri, query, headers: HeaderMap, body: Bytes| {
        let state = shared.clone();
        async move { handle(&state, method, uri, query, headers, body) }
    });
    let server = serve(router).await;
    let now = Arc::new(Mutex::new(Instant::now()));
    let fake = Fake { state, zone: zone.clone(), server, now: now.clone() };
    let token_uri = format!("{}/token", fake.endpoint());
    fake.with(|s| s.token_uri = token_uri.clone());
    let mut key = ServiceAccountKey::from_json(KEY_FILE).expect("the test key parses");
    key.token_uri = token_uri;
    let mut config = GcloudConfig::new("gcloud-test", PROJECT, vec![zone], GcloudCredential::ServiceAccountKey(key));
    config.endpoint = format!("{}/dns/v1", fake.endpoint());
    config.request_timeout = Duration::from_secs(5);
    config.poll_interval = Duration::from_millis(10);
    config.poll_attempts_max = 5;
    configure(&mut config);
    let clock: Clock = Arc::new(move || *now.lock().unwrap());
    let provider = GcloudProvider::with_clock(config, clock).expect("provider");
    (fake, provider)
}

fn fixture(name: &str) -> Value {
    let text = match name {
        "error_condition_not_met" => include_str!("../fixtures/error_condition_not_met.json"),
        "error_already_exists" => include_str!("../fixtures/error_already_exists.json"),
        "error_rate_limited" => include_str!("../fixtures/error_rate_limited.json"),
        "error_invalid_grant" => include_str!("../fixtures/error_invalid_grant.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).expect("fixtures are JSON")
}

fn reply(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

fn form_value<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    body.split('&').find_map(|pair| pair.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

fn issue(s: &mut State) -> Response {
    let token = format!("gcp-token-{}", s.issued.len() + 1);
    s.issued.push(token.clone());
    reply(200, json!({"access_token": token, "expires_in": s.expires_in, "token_type": "Bearer"}))
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
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    s.log.push(Logged {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        authorization: header("authorization"),
        metadata_flavor: header("metadata-flavor"),
        body: serde_json::from_slice(&body).ok(),
    });
    let path = uri.path().to_string();
    if path == "/token" && method == Method::POST {
        let text = String::from_utf8_lossy(&body).into_owned();
        let grant_ok = form_value(&text, "grant_type") == Some("urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer");
        let assertion = form_value(&text, "assertion").unwrap_or_default();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&[s.token_uri.clone()]);
        validation.set_issuer(&[CLIENT_EMAIL]);
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
        let claims = jsonwebtoken::decode::<Value>(assertion, &key, &validation).ok().map(|d| d.claims);
        let scope_ok =
            claims.as_ref().is_some_and(|c| c["scope"] == "https://www.googleapis.com/auth/ndev.clouddns.readwrite");
        if !(grant_ok && scope_ok) {
            return reply(400, fixture("error_invalid_grant"));
        }
        return issue(&mut s);
    }
    if path == "/computeMetadata/v1/instance/service-accounts/default/token" {
        if header("metadata-flavor").as_deref() != Some("Google") {
            return reply(403, json!("Missing Metadata-Flavor:Google header."));
        }
        return issue(&mut s);
    }
    let bearer = header("authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::to_string));
    if bearer.is_none_or(|b| !s.issued.contains(&b)) {
        return reply(
            401,
            json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.",
            "errors": [{"message": "Invalid Credentials", "domain": "global", "reason": "authError"}], "status": "UNAUTHENTICATED"}}),
        );
    }
    if let Some((n, seconds)) = s.throttle.take() {
        if n > 1 {
            s.throttle = Some((n - 1, seconds));
        }
        let status = if s.throttle_as_403 { 403 } else { 429 };
        let mut response = reply(status, fixture("error_rate_limited"));
        response.headers_mut().insert("retry-after", seconds.to_string().parse().unwrap());
        return response;
    }
    let Some(rest) = path.strip_prefix(&format!("/dns/v1/projects/{PROJECT}/")) else {
        return reply(404, json!({"error": {"code": 404, "message": "Not found", "errors": []}}));
    };
    let segments: Vec<&str> = rest.split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["managedZones"]) => {
            let zones: Vec<Value> = if query.get("dnsName").is_none_or(|d| d == "example.com.") {
                vec![
                    json!({"kind": "dns#managedZone", "name": MANAGED_ZONE, "dnsName": "example.com.", "description": "",
                    "id": "4567890123456789012", "nameServers": ["ns-cloud-a1.googledomains.com."],
                    "creationTime": "2026-01-01T05:20:00.000Z", "visibility": "public"}),
                ]
            } else {
                vec![]
            };
            reply(200, json!({"kind": "dns#managedZonesListResponse", "managedZones": zones}))
        }
        ("GET", ["managedZones", MANAGED_ZONE, "rrsets"]) => {
            let name = query.get("name").cloned();
            let size: usize =
                query.get("maxResults").and_then(|m| m.parse().ok()).unwrap_or(100).clamp(1, s.page_size_max);
            let start: usize = query.get("pageToken").and_then(|t| t.parse().ok()).unwrap_or(0);
            let matching: Vec<Value> = s
                .rrsets
                .iter()
                .filter(|r| name.as_ref().is_none_or(|n| r["name"].as_str() == Some(n)))
                .cloned()
                .collect();
            let page: Vec<Value> = matching.iter().skip(start).take(size).cloned().collect();
            let mut answer = json!({"kind": "dns#resourceRecordSetsListResponse", "rrsets": page});
            if start + size < matching.len() {
                answer["nextPageToken"] = json!((start + size).to_string());
            }
            reply(200, answer)
        }
        ("POST", ["managedZones", MANAGED_ZONE, "changes"]) => {
            if let Some(hook) = s.before_change.take() {
                hook(&mut s);
            }
            if let Some(status) = s.fail_next_change.take() {
                return reply(
                    status,
                    json!({"error": {"code": status, "message": "Backend Error", "errors": [{"reason": "backendError"}]}}),
                );
            }
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let deletions = request["deletions"].as_array().cloned().unwrap_or_default();
            let additions = request["additions"].as_array().cloned().unwrap_or_default();
            let mut next = s.rrsets.clone();
            for (i, deletion) in deletions.iter().enumerate() {
                match next.iter().position(|r| r == deletion) {
                    Some(at) => {
                        next.remove(at);
                    }
                    None => {
                        let mut error = fixture("error_condition_not_met");
                        let message = format!("Precondition not met for 'entity.change.deletions[{i}]'");
                        error["error"]["message"] = json!(message);
                        return reply(412, error);
                    }
                }
            }
            for addition in &additions {
                let exists = next.iter().any(|r| r["name"] == addition["name"] && r["type"] == addition["type"]);
                if exists {
                    return reply(409, fixture("error_already_exists"));
                }
                let mut set = addition.clone();
                set["kind"] = json!("dns#resourceRecordSet");
                next.push(set);
            }
            s.rrsets = next;
            let id = (s.changes.len() + 1).to_string();
            let status = if s.polls_until_done == 0 { "done" } else { "pending" };
            let change = json!({"kind": "dns#change", "additions": additions, "deletions": deletions,
                "startTime": "2026-01-01T05:20:00.000Z", "id": id, "status": status, "isServing": status == "done"});
            let polls = s.polls_until_done;
            s.changes.insert(id, (change.clone(), polls));
            let mut response = reply(200, change);
            if std::mem::take(&mut s.drop_next_change_response) {
                response.extensions_mut().insert(DropConnection);
            }
            response
        }
        ("GET", ["managedZones", MANAGED_ZONE, "changes", id]) => match s.changes.get_mut(*id) {
            Some((change, polls)) => {
                if *polls != u32::MAX {
                    *polls = polls.saturating_sub(1);
                }
                if *polls == 0 {
                    change["status"] = json!("done");
                    change["isServing"] = json!(true);
                }
                reply(200, change.clone())
            }
            None => reply(
                404,
                json!({"error": {"code": 404, "message": "The 'parameters.changeId' resource named 'x' does not exist.", "errors": [{"reason": "notFound"}]}}),
            ),
        },
        _ => reply(404, json!({"error": {"code": 404, "message": "Not found", "errors": []}})),
    }
}
