//! The configuration reference printed in the README. A test compares every
//! level of this table with the fields the parser accepts, and the README with
//! [`markdown`], so the documentation cannot drift from the code.

/// One documented field.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Dotted path; `[]` marks list elements, `<name>` map keys.
    pub path: &'static str,
    /// The value's type as written in YAML.
    pub kind: &'static str,
    /// The default, or `required`.
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
}

const fn f(path: &'static str, kind: &'static str, default: &'static str, doc: &'static str) -> Field {
    Field { path, kind, default, doc }
}

/// `kind: FailoverPolicy` fields.
pub const POLICY_FIELDS: &[Field] = &[
    f("apiVersion", "string", "required", "`veer/v1`"),
    f("kind", "string", "required", "`FailoverPolicy`"),
    f("metadata.name", "string", "required", "unique policy name: lowercase letters, digits, `-`"),
    f("spec.record.name", "name", "required", "the managed name, fully qualified with a trailing dot"),
    f("spec.record.type", "enum", "required", "`A`, `AAAA` or `CNAME` (a CNAME may have one live answer)"),
    f("spec.record.ttl", "seconds", "30", "TTL of the published answers, 1–86400"),
    f(
        "spec.publishTo",
        "list of names",
        "required",
        "providers (from the controller config) that receive the same answers",
    ),
    f("spec.adopt", "bool", "false", "take over a name that has answers but no ownership record"),
    f(
        "spec.routing",
        "enum",
        "required",
        "`weighted` (all healthy endpoints) or `failover` (first pool with capacity)",
    ),
    f("spec.pools[].name", "string", "required", "pool name, unique in the policy"),
    f("spec.pools[].endpoints[].id", "string", "required", "endpoint id, unique in the policy"),
    f(
        "spec.pools[].endpoints[].address",
        "string",
        "required",
        "IPv4 (A), IPv6 (AAAA) or a fully qualified name (CNAME); unique",
    ),
    f("spec.pools[].endpoints[].capacity", "number", "100", "relative capacity; weights are proportional to it"),
    f(
        "spec.pools[].endpoints[].check.host",
        "string",
        "none",
        "Host header and SNI for this endpoint's http/https probes",
    ),
    f("spec.pools[].endpoints[].check.port", "port", "none", "probe this port instead of the policy's"),
    f("spec.pools[].endpoints[].check.address", "IP", "none", "probe this address instead of the endpoint's"),
    f("spec.healthCheck.type", "enum", "required", "`http`, `https`, `tcp` or `dns`"),
    f("spec.healthCheck.port", "port", "80 / 443 / 53", "probe port; required for `tcp`"),
    f("spec.healthCheck.path", "string", "`/`", "http/https: request path"),
    f("spec.healthCheck.expectStatus", "list of statuses", "[200]", "http/https: accepted statuses"),
    f("spec.healthCheck.body", "string", "none", "http/https: a substring the body must contain"),
    f("spec.healthCheck.host", "string", "none", "http/https: Host header and SNI for every endpoint"),
    f("spec.healthCheck.caBundle", "path", "system roots", "https: PEM file of trusted CAs"),
    f("spec.healthCheck.insecureSkipVerify", "bool", "false", "https: accept any certificate (labs only)"),
    f("spec.healthCheck.query", "name", "required for dns", "dns: the name each endpoint must answer"),
    f("spec.healthCheck.interval", "duration", "1s", "time between probes of one endpoint"),
    f("spec.healthCheck.timeout", "duration", "500ms", "per-probe timeout, shorter than `interval`"),
    f("spec.healthCheck.rise", "count", "2", "consecutive successes to count healthy"),
    f("spec.healthCheck.fall", "count", "3", "consecutive failures to count unhealthy"),
    f("spec.healthCheck.quorum", "percent", "50", "share of fresh vantages that must see an endpoint down"),
    f("spec.shift.maxRemovePercent", "percent", "50", "capacity automation may remove per window"),
    f("spec.shift.window", "duration", "5m", "window of `maxRemovePercent`"),
    f("spec.shift.maxChangesPerHour", "count", "60", "applied changes of the record per hour"),
    f("spec.warmup.stages", "list of percents", "[10, 25, 50, 100]", "strictly ascending, ending at 100"),
    f("spec.warmup.hold", "duration", "30s", "healthy time per stage before the next"),
    f("spec.warmup.maxJoinPercent", "percent", "25", "set-only providers: capacity that may rejoin per stage"),
    f("spec.guards.minHealthyEndpoints", "count", "1", "fewest endpoints kept published"),
    f("spec.guards.minCapacityPercent", "percent", "30", "least capacity kept published (failover: per pool)"),
    f("spec.guards.onAllUnhealthy", "enum", "serve-all", "`serve-all` (fail open) or `keep-last` (fail static)"),
];

/// `kind: Drill` fields.
pub const DRILL_FIELDS: &[Field] = &[
    f("apiVersion", "string", "required", "`veer/v1`"),
    f("kind", "string", "required", "`Drill`"),
    f("metadata.name", "string", "required", "unique drill name: lowercase letters, digits, `-`"),
    f(
        "spec.target",
        "string",
        "required",
        "`ENDPOINT`, `endpoint/ID` or `pool/NAME` to drain, or `leader` to hand over",
    ),
    f("spec.policy", "string", "required for endpoint/pool", "the policy the endpoint or pool belongs to"),
    f(
        "spec.schedule.windows",
        "window or list",
        "required",
        "weekly UTC windows, `weekdays 10:00-16:00` or `{days, from, to}`; none: on request only",
    ),
    f("spec.schedule.windows[].days", "days", "required", "`daily`, `weekdays`, `weekends`, `mon-fri`, `[mon, wed]`"),
    f("spec.schedule.windows[].from", "time", "required", "opening time, `HH:MM` UTC"),
    f(
        "spec.schedule.windows[].to",
        "time",
        "required",
        "closing time, `HH:MM` UTC (`24:00`); at or before `from`: next day",
    ),
    f("spec.schedule.minSpacing", "duration", "24h", "least time between two scheduled starts"),
    f("spec.duration", "duration", "5m", "how long the target stays drained (at most 24h)"),
    f("spec.maxCapacityPercent", "percent", "50", "largest share of the record's capacity the drill may remove"),
    f("spec.abortOn.guardOrVelocityHold", "bool", "true", "abort on a guard, velocity or change-budget hold"),
    f("spec.abortOn.otherEndpointUnhealthy", "bool", "true", "abort when another endpoint of the record is unhealthy"),
    f("spec.abortOn.checkerImpaired", "bool", "true", "abort when the health checker is impaired"),
];

/// `kind: ControllerConfig` fields (`veer.yaml`).
pub const CONFIG_FIELDS: &[Field] = &[
    f("apiVersion", "string", "required", "`veer/v1`"),
    f("kind", "string", "required", "`ControllerConfig`"),
    f("clusterId", "string", "required", "owner id written into ownership records"),
    f("vantage", "string", "host name", "this replica's vantage id"),
    f("policies", "list of paths", "[]", "policy files, folders or globs, relative to this file"),
    f("admin.listen", "address", "127.0.0.1:9090", "admin API listener"),
    f("admin.tokenFile", "path", "none", "file holding the bearer token for mutating calls and `GET /v1/vantage`"),
    f("admin.tokenEnv", "string", "none", "environment variable holding that token"),
    f(
        "admin.advertiseUrl",
        "URL",
        "http://<listen>",
        "`http://HOST:PORT` other replicas reach this admin API at (the leader fetches vantage reports); required when `listen` is 0.0.0.0/[::] with etcd or kubernetes",
    ),
    f("coordination.backend", "enum", "standalone", "`standalone`, `etcd` or `kubernetes`"),
    f("coordination.stateFile", "path", "veer-state.json", "standalone: state file, relative to this file"),
    f("coordination.etcd.endpoints", "list of URLs", "required for etcd", "etcd client URLs"),
    f("coordination.etcd.prefix", "string", "/veer/<clusterId>", "key prefix"),
    f(
        "coordination.kubernetes.namespace",
        "string",
        "required for kubernetes",
        "namespace of the Lease and ConfigMaps",
    ),
    f("coordination.kubernetes.leaseName", "string", "veer-leader", "Lease name"),
    f("coordination.leaseDuration", "duration", "15s", "leader lease"),
    f("coordination.renewDeadline", "duration", "10s", "the leader stops writing if it cannot renew by then"),
    f("coordination.retryPeriod", "duration", "2s", "election retry period (jittered)"),
    f(
        "coordination.historyKeep",
        "count",
        "50",
        "applied plans kept per record in the store's history; older ones are deleted after each apply",
    ),
    f(
        "providers.<name>.type",
        "enum",
        "required",
        "`embedded`, `rfc2136`, `powerdns`, `route53`, `cloudflare`, `gcloud`, `azure`",
    ),
    f("providers.<name>.zones", "list of names", "required", "zones managed through this provider"),
    f("providers.<name>.listen", "address", "127.0.0.1:5353", "embedded: UDP and TCP listener"),
    f("providers.<name>.server", "host:port", "required for rfc2136", "rfc2136/powerdns: server receiving updates"),
    f("providers.<name>.tsig.name", "string", "required", "TSIG key name"),
    f("providers.<name>.tsig.algorithm", "enum", "required", "`hmac-sha256` or `hmac-sha512`"),
    f("providers.<name>.tsig.secretFile", "path", "one of", "file holding the base64 secret"),
    f("providers.<name>.tsig.secretEnv", "string", "one of", "environment variable holding it"),
    f("providers.<name>.apiUrl", "URL", "vendor default", "API base URL or endpoint override"),
    f(
        "providers.<name>.apiKeyFile",
        "path",
        "none",
        "the secret from a file: powerdns API key, cloudflare API token, azure client secret",
    ),
    f("providers.<name>.apiKeyEnv", "string", "none", "environment variable holding it"),
    f(
        "providers.<name>.apiWrites",
        "bool",
        "false",
        "powerdns: write through the HTTP API (last-writer-wins, weaker) instead of RFC 2136",
    ),
    f("providers.<name>.region", "string", "us-east-1", "route53: AWS region of the API"),
    f("providers.<name>.profile", "string", "credential chain", "route53: named AWS profile"),
    f("providers.<name>.project", "string", "required for gcloud", "gcloud: project of the managed zones"),
    f(
        "providers.<name>.credentialsFile",
        "path",
        "metadata server",
        "gcloud: service-account key file (else Workload Identity)",
    ),
    f("providers.<name>.subscriptionId", "string", "required for azure", "azure: subscription of the DNS zones"),
    f("providers.<name>.resourceGroup", "string", "required for azure", "azure: resource group of the DNS zones"),
    f("providers.<name>.tenantId", "string", "required for azure", "azure: directory (tenant) id"),
    f("providers.<name>.clientId", "string", "required for azure", "azure: application (client) id"),
    f(
        "providers.<name>.federatedTokenFile",
        "path",
        "none",
        "azure: workload identity token file (instead of a client secret)",
    ),
    f("providers.<name>.hostedZoneIds", "list", "looked up by name", "route53: hosted zone ids"),
    f("providers.<name>.budget.callsPerSecond", "number", "5 (route53), 20", "sustained API calls per second"),
    f("providers.<name>.budget.burst", "count", "5 (route53), 20", "token bucket size"),
    f(
        "providers.<name>.resyncEvery",
        "duration",
        "0s (embedded, rfc2136, powerdns), 30s",
        "how long the read of a record nothing wants to change is reused; a round that would write reads again first",
    ),
];

fn table(title: &str, fields: &[Field]) -> String {
    let mut out = format!("#### {title}\n\n| field | type | default | meaning |\n|---|---|---|---|\n");
    for field in fields {
        out += &format!("| `{}` | {} | {} | {} |\n", field.path, field.kind, field.default, field.doc);
    }
    out
}

/// The reference as Markdown, exactly as the README holds it between the
/// `<!-- reference:begin -->` and `<!-- reference:end -->` markers.
pub fn markdown() -> String {
    format!(
        "{}\n{}\n{}",
        table("FailoverPolicy (`policies/*.yaml`)", POLICY_FIELDS),
        table("Drill (`policies/*.yaml`, see Drills)", DRILL_FIELDS),
        table("ControllerConfig (`veer.yaml`)", CONFIG_FIELDS)
    )
}
