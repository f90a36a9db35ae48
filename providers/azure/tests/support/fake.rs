//! A stateful fake of Azure DNS record sets (ARM, api-version 2018-05-01) and of
//! the Microsoft identity platform v2.0 token endpoint, written from the
//! published REST references (see `../fixtures/README.md`).
//!
//! Record sets carry etags; `PUT` honours `If-Match` and `If-None-Match: *` with
//! `412 PreconditionFailed`. Tokens are issued for a client secret or a federated
//! assertion, and ARM requests must carry an issued token. Faults: 429 with
//! `Retry-After`, a 5xx, a dropped connection after a write landed, and a hook
//! that runs before a `PUT` (another writer).

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use veer_provider::conformance::ApiFake;
use veer_provider::{RecordName, RecordType};
use veer_provider_azure::{AzureConfig, AzureCredential, AzureProvider, Clock, Secret};

use veer_provider_testbed::http_server::{DropConnection, Server, serve};

pub const CLIENT_SECRET: &str = "az-SECRET-client-5e4d3c2b";
pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_ID: &str = "66666666-7777-8888-9999-000000000000";
pub const SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000000";
pub const GROUP: &str = "dns-rg";

type Hook = Box<dyn FnOnce(&mut State) + Send>;

#[derive(Debug, Clone)]
pub struct Set {
    pub etag: String,
    pub ttl: u32,
    pub values: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub form: HashMap<String, String>,
    pub body: Option<Value>,
}

pub struct State {
    /// Record sets by (type, relative name).
    pub sets: HashMap<(String, String), Set>,
    next_etag: u64,
    pub client_secret: String,
    /// The federated assertion the token endpoint accepts (workload identity).
    pub federated_assertion: Option<String>,
    pub issued: Vec<String>,
    pub expires_in: u64,
    pub throttle: Option<(usize, u64)>,
    pub fail_next_put: Option<u16>,
    /// The next `PUT` of this record type is applied, then the connection is dropped.
    pub drop_after_put_of: Option<String>,
    pub before_put: Option<Hook>,
    pub log: Vec<Logged>,
    pub puts: usize,
}

impl State {
    pub fn etag(&mut self) -> String {
        self.next_etag += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.next_etag)
    }

    /// Writes a record set as another writer would (a new etag).
    pub fn put_set(&mut self, rtype: &str, relative: &str, values: &[&str], ttl: u32) {
        let etag = self.etag();
        self.sets.insert(
            (rtype.into(), relative.to_ascii_lowercase()),
            Set { etag, ttl, values: values.iter().map(|v| v.to_string()).collect() },
        );
    }

    pub fn values(&self, rtype: &str, relative: &str) -> Vec<String> {
        self.sets.get(&(rtype.into(), relative.to_ascii_lowercase())).map(|s| s.values.clone()).unwrap_or_default()
    }
}

pub struct Fake {
    pub state: Arc<Mutex<State>>,
    pub zone: RecordName,
    pub server: Server,
    /// The test clock the provider's token cache reads.
    pub now: Arc<Mutex<Instant>>,
}

impl Fake {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    fn relative(&self, name: &RecordName) -> String {
        let full = name.as_str();
        full[..full.len() - self.zone.as_str().len() - 1].to_string()
    }

    pub fn values(&self, name: &RecordName, rtype: &str) -> Vec<String> {
        let relative = self.relative(name);
        self.with(|s| s.values(rtype, &relative))
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

    /// Replaces the answers of `name` (empty removes the record set).
    fn set_answers(&self, name: &RecordName, rtype: RecordType, values: &[&str]) {
        let relative = self.relative(name);
        self.with(|s| {
            if values.is_empty() {
                s.sets.remove(&(rtype.to_string(), relative));
            } else {
                s.put_set(&rtype.to_string(), &relative, values, 60);
            }
        });
    }

    /// Replaces the TXT values at `name` (`None` removes the record set).
    fn set_txt(&self, name: &RecordName, text: Option<&str>) {
        let relative = self.relative(name);
        self.with(|s| match text {
            Some(t) => s.put_set("TXT", &relative, &[t], 300),
            None => {
                s.sets.remove(&("TXT".into(), relative));
            }
        });
    }
}

pub async fn start_fake() -> (Fake, AzureProvider) {
    start_fake_with(|_| {}).await
}

/// The fake and a provider pointed at it (client secret, test clock), in one call.
pub async fn start_fake_with(configure: impl FnOnce(&mut AzureConfig)) -> (Fake, AzureProvider) {
    let zone = RecordName::parse("example.com.").unwrap();
    let state = Arc::new(Mutex::new(State {
        sets: HashMap::new(),
        next_etag: 0,
        client_secret: CLIENT_SECRET.into(),
        federated_assertion: None,
        issued: Vec::new(),
        expires_in: 3599,
        throttle: None,
        fail_next_put: None,
        drop_after_put_of: None,
        before_put: None,
        log: Vec::new(),
        puts: 0,
    }));
    let shared = state.clone();
    let router = Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let state = shared.clone();
        async move { handle(&state, method, uri, headers, body) }
    });
    let server = serve(router).await;
    let now = Arc::new(Mutex::new(Instant::now()));
    let fake = Fake { state, zone: zone.clone(), server, now: now.clone() };
    let credential = AzureCredential::ClientSecret {
        tenant_id: TENANT.into(),
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new(CLIENT_SECRET),
    };
    let mut config = AzureConfig::new("azure-test", vec![zone], SUBSCRIPTION, GROUP, credential);
    config.management_endpoint = fake.endpoint();
    config.authority = fake.endpoint();
    config.request_timeout = Duration::from_secs(5);
    configure(&mut config);
    let clock: Clock = Arc::new(move || *now.lock().unwrap());
    let provider = AzureProvider::with_clock(config, clock).expect("provider");
    (fake, provider)
}

fn fixture(name: &str) -> Value {
    let text = match name {
        "error_not_found" => include_str!("../fixtures/error_not_found.json"),
        "error_precondition_failed" => include_str!("../fixtures/error_precondition_failed.json"),
        "error_throttled" => include_str!("../fixtures/error_throttled.json"),
        "error_token_invalid_client" => include_str!("../fixtures/error_token_invalid_client.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).expect("fixtures are JSON")
}

fn reply(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

/// `application/x-www-form-urlencoded`, decoded.
fn form(body: &[u8]) -> HashMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            if bytes[i] == b'%'
                && let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn record_set_json(rtype: &str, relative: &str, set: &Set) -> Value {
    let records = match rtype {
        "A" => json!({"ARecords": set.values.iter().map(|v| json!({"ipv4Address": v})).collect::<Vec<_>>()}),
        "AAAA" => json!({"AAAARecords": set.values.iter().map(|v| json!({"ipv6Address": v})).collect::<Vec<_>>()}),
        "CNAME" => json!({"CNAMERecord": {"cname": set.values.first()}}),
        _ => json!({"TXTRecords": set.values.iter().map(|v| json!({"value": [v]})).collect::<Vec<_>>()}),
    };
    let mut properties = json!({
        "metadata": {}, "TTL": set.ttl, "fqdn": format!("{relative}.example.com."),
        "provisioningState": "Succeeded", "targetResource": {}
    });
    properties.as_object_mut().unwrap().extend(records.as_object().unwrap().clone());
    json!({
        "id": format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.Network/dnsZones/example.com/{rtype}/{relative}"),
        "name": relative, "type": format!("Microsoft.Network/dnsZones/{rtype}"), "etag": set.etag, "properties": properties
    })
}

fn values_from(rtype: &str, properties: &Value) -> Vec<String> {
    let list = |key: &str, field: &str| -> Vec<String> {
        properties[key]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r[field].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    match rtype {
        "A" => list("ARecords", "ipv4Address"),
        "AAAA" => list("AAAARecords", "ipv6Address"),
        "CNAME" => properties["CNAMERecord"]["cname"].as_str().map(|c| vec![c.to_string()]).unwrap_or_default(),
        _ => properties["TXTRecords"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| r["value"].as_array().unwrap().iter().filter_map(Value::as_str).collect::<String>())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn handle(state: &Mutex<State>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = state.lock().unwrap();
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let authorization = header("authorization");
    let is_token = uri.path().ends_with("/oauth2/v2.0/token");
    s.log.push(Logged {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        authorization: authorization.clone(),
        if_match: header("if-match"),
        if_none_match: header("if-none-match"),
        form: if is_token { form(&body) } else { HashMap::new() },
        body: serde_json::from_slice(&body).ok(),
    });
    if is_token {
        let f = form(&body);
        let tenant_ok = uri.path() == format!("/{TENANT}/oauth2/v2.0/token");
        let grant_ok = f.get("grant_type").map(String::as_str) == Some("client_credentials")
            && f.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && f.get("scope").map(String::as_str) == Some("https://management.azure.com/.default");
        let secret_ok = f.get("client_secret") == Some(&s.client_secret);
        let assertion_ok = f.get("client_assertion_type").map(String::as_str)
            == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            && s.federated_assertion.is_some()
            && f.get("client_assertion") == s.federated_assertion.as_ref();
        if !(tenant_ok && grant_ok && (secret_ok || assertion_ok)) {
            return reply(401, fixture("error_token_invalid_client"));
        }
        let token = format!("azure-token-{}", s.issued.len() + 1);
        s.issued.push(token.clone());
        // expires_in as a string, as the v1 endpoint and some clouds send it.
        let expires =
            if s.issued.len().is_multiple_of(2) { json!(s.expires_in.to_string()) } else { json!(s.expires_in) };
        return reply(
            200,
            json!({"token_type": "Bearer", "expires_in": expires, "ext_expires_in": expires, "access_token": token}),
        );
    }
    let bearer = authorization.as_deref().and_then(|a| a.strip_prefix("Bearer ")).map(str::to_string);
    if bearer.is_none_or(|b| !s.issued.contains(&b)) {
        return reply(
            401,
            json!({"error": {"code": "AuthenticationFailed", "message": "Authentication failed. The 'Authorization' header is missing or invalid."}}),
        );
    }
    if let Some((n, seconds)) = s.throttle.take() {
        if n > 1 {
            s.throttle = Some((n - 1, seconds));
        }
        let mut response = reply(429, fixture("error_throttled"));
        response.headers_mut().insert("retry-after", seconds.to_string().parse().unwrap());
        return response;
    }
    if uri.query() != Some("api-version=2018-05-01") {
        return reply(
            400,
            json!({"error": {"code": "InvalidApiVersionParameter", "message": "The api-version is missing or not supported."}}),
        );
    }
    let prefix = format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.Network/dnsZones/example.com/"
    );
    let Some(rest) = uri.path().strip_prefix(&prefix) else {
        return reply(404, json!({"error": {"code": "ResourceNotFound", "message": "The Resource was not found."}}));
    };
    let Some((rtype, relative)) = rest.split_once('/') else {
        return reply(404, json!({"error": {"code": "ResourceNotFound", "message": "The Resource was not found."}}));
    };
    let key = (rtype.to_string(), relative.to_ascii_lowercase());
    match method.as_str() {
        "GET" => match s.sets.get(&key) {
            Some(set) => reply(200, record_set_json(rtype, relative, set)),
            None => reply(404, fixture("error_not_found")),
        },
        "PUT" => {
            s.puts += 1;
            if let Some(hook) = s.before_put.take() {
                hook(&mut s);
            }
            if let Some(status) = s.fail_next_put.take() {
                return reply(
                    status,
                    json!({"error": {"code": "InternalServerError", "message": "An error has occurred."}}),
                );
            }
            let current = s.sets.get(&key).map(|set| set.etag.clone());
            let if_match = header("if-match");
            let if_none_match = header("if-none-match");
            let holds = match (&if_match, &if_none_match, &current) {
                (Some(m), _, Some(c)) => m == c,
                (Some(_), _, None) => false,
                (None, Some(n), c) if n == "*" => c.is_none(),
                _ => true,
            };
            if !holds {
                return reply(412, fixture("error_precondition_failed"));
            }
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let values = values_from(rtype, &request["properties"]);
            let ttl = request["properties"]["TTL"].as_u64().unwrap_or(3600) as u32;
            let etag = s.etag();
            let set = Set { etag, ttl, values };
            let created = current.is_none();
            s.sets.insert(key, set.clone());
            let mut response = reply(if created { 201 } else { 200 }, record_set_json(rtype, relative, &set));
            if s.drop_after_put_of.as_deref() == Some(rtype) {
                s.drop_after_put_of = None;
                response.extensions_mut().insert(DropConnection);
            }
            response
        }
        _ => reply(405, json!({"error": {"code": "MethodNotAllowed", "message": "The method is not allowed."}})),
    }
}
