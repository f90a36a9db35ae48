//! A fake Kubernetes API for Leases and ConfigMaps: stateful, on loopback, enforcing
//! `resourceVersion` preconditions with 409 Conflict as the API server does. Reached through
//! a real kube `Client` built from a generated kubeconfig.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct FakeState {
    revision: u64,
    /// (kind, namespace, name) → object.
    objects: BTreeMap<(String, String, String), Value>,
    /// Conflicts answered, by kind.
    pub conflicts: HashMap<String, u64>,
    /// When set, the next Lease update loses a race: just before it is applied, the Lease is
    /// taken by this holder (transitions + 1, new `resourceVersion`), so the update gets 409.
    pub steal_next_lease_update: Option<String>,
}

/// A running fake API server.
pub struct FakeKube {
    pub state: Arc<Mutex<FakeState>>,
    pub port: u16,
    _dir: tempfile::TempDir,
    pub kubeconfig: std::path::PathBuf,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

impl FakeState {
    fn next_revision(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    fn conflict(&mut self, kind: &str, message: String) -> Response {
        *self.conflicts.entry(kind.to_owned()).or_default() += 1;
        status(StatusCode::CONFLICT, "Conflict", message)
    }

    /// The stored object, for assertions.
    pub fn object(&self, kind: &str, ns: &str, name: &str) -> Option<Value> {
        self.objects.get(&(kind.to_owned(), ns.to_owned(), name.to_owned())).cloned()
    }

    /// Replaces an object out of band (an actor the electors do not know), bumping its
    /// `resourceVersion`.
    pub fn modify(&mut self, kind: &str, ns: &str, name: &str, change: impl FnOnce(&mut Value)) {
        let revision = self.next_revision();
        let object = self.objects.get_mut(&(kind.to_owned(), ns.to_owned(), name.to_owned())).expect("object");
        change(object);
        object["metadata"]["resourceVersion"] = json!(revision);
    }

    /// Inserts an object out of band.
    pub fn insert(&mut self, kind: &str, ns: &str, mut object: Value) {
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        object["metadata"]["resourceVersion"] = json!(self.next_revision());
        self.objects.insert((kind.to_owned(), ns.to_owned(), name), object);
    }

    /// Number of objects of a kind.
    pub fn count(&self, kind: &str) -> usize {
        self.objects.keys().filter(|(k, _, _)| k == kind).count()
    }
}

type Shared = Arc<Mutex<FakeState>>;

fn parse(body: &Bytes) -> Result<Value, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| Box::new(status(StatusCode::BAD_REQUEST, "BadRequest", e.to_string())))
}

fn create(state: &Shared, kind: &str, ns: String, body: Bytes) -> Response {
    let mut object = match parse(&body) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let mut s = state.lock().unwrap();
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let key = (kind.to_owned(), ns.clone(), name.clone());
    if s.objects.contains_key(&key) {
        *s.conflicts.entry(kind.to_owned()).or_default() += 1;
        return status(StatusCode::CONFLICT, "AlreadyExists", format!("{kind} \"{name}\" already exists"));
    }
    object["metadata"]["resourceVersion"] = json!(s.next_revision());
    object["metadata"]["namespace"] = json!(ns);
    object["metadata"]["uid"] = json!(format!("uid-{}", s.revision));
    s.objects.insert(key, object.clone());
    (StatusCode::CREATED, axum::Json(object)).into_response()
}

fn read(state: &Shared, kind: &str, ns: String, name: String) -> Response {
    match state.lock().unwrap().objects.get(&(kind.to_owned(), ns, name.clone())) {
        Some(object) => axum::Json(object.clone()).into_response(),
        None => status(StatusCode::NOT_FOUND, "NotFound", format!("{kind} \"{name}\" not found")),
    }
}

fn replace(state: &Shared, kind: &str, ns: String, name: String, body: Bytes) -> Response {
    let mut object = match parse(&body) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let mut s = state.lock().unwrap();
    if kind == "leases"
        && let Some(thief) = s.steal_next_lease_update.take()
    {
        let ns = ns.clone();
        s.modify(kind, &ns, &name, |lease| {
            let transitions = lease["spec"]["leaseTransitions"].as_i64().unwrap_or(0);
            lease["spec"]["holderIdentity"] = json!(thief);
            lease["spec"]["leaseTransitions"] = json!(transitions + 1);
        });
    }
    let key = (kind.to_owned(), ns, name.clone());
    let Some(current) = s.objects.get(&key) else {
        return status(StatusCode::NOT_FOUND, "NotFound", format!("{kind} \"{name}\" not found"));
    };
    let stored = current["metadata"]["resourceVersion"].clone();
    if let Some(asked) = object["metadata"]["resourceVersion"].as_str()
        && Some(asked) != stored.as_str()
    {
        return s.conflict(
            kind,
            format!("Operation cannot be fulfilled on {kind} \"{name}\": the object has been modified"),
        );
    }
    object["metadata"]["uid"] = current["metadata"]["uid"].clone();
    object["metadata"]["resourceVersion"] = json!(s.next_revision());
    s.objects.insert(key, object.clone());
    axum::Json(object).into_response()
}

fn remove(state: &Shared, kind: &str, ns: String, name: String, body: Bytes) -> Response {
    let options: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock().unwrap();
    let key = (kind.to_owned(), ns, name.clone());
    let Some(current) = s.objects.get(&key).cloned() else {
        return status(StatusCode::NOT_FOUND, "NotFound", format!("{kind} \"{name}\" not found"));
    };
    if let Some(asked) = options["preconditions"]["resourceVersion"].as_str()
        && Some(asked) != current["metadata"]["resourceVersion"].as_str()
    {
        return s.conflict(kind, format!("Precondition failed for {kind} \"{name}\""));
    }
    s.objects.remove(&key);
    axum::Json(current).into_response()
}

fn list(state: &Shared, kind: &str, ns: String, query: HashMap<String, String>) -> Response {
    let selector: Vec<(String, String)> = query
        .get("labelSelector")
        .map(|s| s.split(',').filter_map(|t| t.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
        .unwrap_or_default();
    let s = state.lock().unwrap();
    let items: Vec<Value> = s
        .objects
        .iter()
        .filter(|((k, n, _), _)| k == kind && *n == ns)
        .map(|(_, o)| o.clone())
        .filter(|o| selector.iter().all(|(k, v)| o["metadata"]["labels"][k].as_str() == Some(v)))
        .collect();
    let list_kind = if kind == "configmaps" { "ConfigMapList" } else { "LeaseList" };
    let api_version = if kind == "configmaps" { "v1" } else { "coordination.k8s.io/v1" };
    axum::Json(json!({
        "apiVersion": api_version, "kind": list_kind,
        "metadata": {"resourceVersion": s.revision.to_string()}, "items": items,
    }))
    .into_response()
}

fn routes(router: Router<Shared>, kind: &'static str, collection: &str) -> Router<Shared> {
    router
        .route(
            collection,
            get(move |State(s): State<Shared>, Path(ns): Path<String>, Query(q): Query<HashMap<String, String>>| async move {
                list(&s, kind, ns, q)
            })
            .post(move |State(s): State<Shared>, Path(ns): Path<String>, body: Bytes| async move {
                create(&s, kind, ns, body)
            }),
        )
        .route(
            &format!("{collection}/{{name}}"),
            get(move |State(s): State<Shared>, Path((ns, name)): Path<(String, String)>| async move {
                read(&s, kind, ns, name)
            })
            .put(move |State(s): State<Shared>, Path((ns, name)): Path<(String, String)>, body: Bytes| async move {
                replace(&s, kind, ns, name, body)
            })
            .delete(move |State(s): State<Shared>, Path((ns, name)): Path<(String, String)>, body: Bytes| async move {
                remove(&s, kind, ns, name, body)
            }),
        )
}

impl FakeKube {
    /// Starts the fake and writes a kubeconfig pointing at it (namespace `veer`).
    pub async fn start() -> FakeKube {
        let state: Shared = Arc::default();
        let app = routes(Router::new(), "leases", "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases");
        let app = routes(app, "configmaps", "/api/v1/namespaces/{ns}/configmaps").with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            axum::serve(listener, app.into_make_service()).await.unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{port}\n\
                 contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: veer\n\
                 current-context: fake\nusers:\n- name: fake\n  user:\n    token: test-token\n"
            ),
        )
        .unwrap();
        FakeKube { state, port, _dir: dir, kubeconfig, server }
    }
}
