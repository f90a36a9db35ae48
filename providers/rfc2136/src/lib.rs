//! veer's RFC 2136 provider: conditional, TSIG-signed DNS UPDATEs over TCP, for
//! BIND 9, Knot and PowerDNS (ARCHITECTURE.md §6).
//!
//! # Expected flow
//! - `read` queries the name's RRset and `_veer.<name>` TXT over TCP (no zone
//!   transfer, so no transfer ACL is needed and reads stay cheap).
//! - `apply` sends the whole batch as **one** UPDATE: for every name, a
//!   prerequisite on the ownership TXT as read (value-dependent "RRset exists", or
//!   "RRset does not exist") and one on the answers as read, then delete-and-add of
//!   the answers and of the TXT. The server applies all of it or nothing; a failed
//!   prerequisite (NXRRSET/YXRRSET) is a [`ProviderError::Conflict`].
//!
//! # Why TCP
//! Over UDP a client resends a signed update it got no answer for; when the first
//! copy landed, the resend fails its prerequisite and the swap is misreported as a
//! conflict. Over TCP a lost answer is an [`ProviderError::Ambiguous`] failure,
//! which the retry layer settles by re-reading.
//!
//! # Why messages are signed here
//! The update is signed with [`TSigner`] before it is handed to an unsigned
//! hickory client, and the reply's TSIG is verified here. A client that signs for
//! us reports a server's unsigned NOTAUTH (wrong secret, unknown key) as a
//! misleading "truncated HMACs" error; read ourselves, the reply gives the real
//! RCODE and TSIG error (BADSIG, BADKEY, BADTIME).
//!
//! # Caveats
//! Set-only: DNS has no weights, so an answer is present iff its planned weight is
//! above zero. TSIG needs wall-clock time within the key's fudge (300 s) of the
//! server's. The secret is given as bytes or base64 by the caller; this crate
//! reads no files and never prints the secret.

use futures_util::StreamExt;
use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::{DnsHandle, NetError};
use hickory_proto::op::{
    DnsRequest, DnsRequestOptions, DnsResponse, Message, OpCode, Query, ResponseCode, UpdateMessage,
};
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm as WireAlgorithm, TsigError};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType as WireType, TSigner};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use veer_provider::{
    Answer, Capabilities, CasPrimitive, ChangeBatch, Observed, Provider, ProviderError, ProviderFuture, RecordName,
    RecordSet, RecordType, Weighting,
};

/// TSIG fudge: how far apart the client's and the server's clocks may be.
const TSIG_FUDGE_SECONDS: u16 = 300;

/// The TSIG algorithms veer signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigAlgorithm {
    /// `hmac-sha256`.
    HmacSha256,
    /// `hmac-sha512`.
    HmacSha512,
}

impl TsigAlgorithm {
    fn wire(self) -> WireAlgorithm {
        match self {
            TsigAlgorithm::HmacSha256 => WireAlgorithm::HmacSha256,
            TsigAlgorithm::HmacSha512 => WireAlgorithm::HmacSha512,
        }
    }
}

impl std::str::FromStr for TsigAlgorithm {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.to_ascii_lowercase().as_str() {
            "hmac-sha256" => Ok(Self::HmacSha256),
            "hmac-sha512" => Ok(Self::HmacSha512),
            other => Err(ConfigError::UnsupportedAlgorithm(other.into())),
        }
    }
}

/// Why the provider cannot be built. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The key secret is empty.
    #[error("TSIG key {0:?}: the secret is empty")]
    EmptySecret(String),
    /// The base64 secret does not decode (its text is not repeated here).
    #[error("TSIG key {key:?}: the secret is not valid base64 ({reason})")]
    BadSecret {
        /// Key name.
        key: String,
        /// The decoder's complaint, which does not quote the input.
        reason: String,
    },
    /// The key name is not a DNS name.
    #[error("TSIG key name {0:?} is not a valid DNS name")]
    BadKeyName(String),
    /// Only hmac-sha256 and hmac-sha512 are supported.
    #[error("TSIG algorithm {0:?} is not supported (use hmac-sha256 or hmac-sha512)")]
    UnsupportedAlgorithm(String),
    /// The provider has no zone.
    #[error("an rfc2136 provider needs at least one zone")]
    NoZones,
}

/// A TSIG key. Its `Debug` output and every error leave the secret out.
#[derive(Clone)]
pub struct TsigKey {
    name: String,
    algorithm: TsigAlgorithm,
    secret: Vec<u8>,
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl TsigKey {
    /// A key from its raw secret.
    pub fn new(name: &str, algorithm: TsigAlgorithm, secret: Vec<u8>) -> Result<Self, ConfigError> {
        if secret.is_empty() {
            return Err(ConfigError::EmptySecret(name.into()));
        }
        Name::from_ascii(name).map_err(|_| ConfigError::BadKeyName(name.into()))?;
        Ok(Self { name: name.into(), algorithm, secret })
    }

    /// A key from its base64 secret, as `tsig-keygen` and `keymgr` print it.
    pub fn from_base64(name: &str, algorithm: TsigAlgorithm, secret_base64: &str) -> Result<Self, ConfigError> {
        use base64::Engine as _;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret_base64.trim())
            .map_err(|e| ConfigError::BadSecret { key: name.into(), reason: describe_base64_error(&e) })?;
        Self::new(name, algorithm, secret)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn signer(&self) -> Result<TSigner, ConfigError> {
        let name = Name::from_ascii(&self.name).map_err(|_| ConfigError::BadKeyName(self.name.clone()))?;
        TSigner::new(self.secret.clone(), self.algorithm.wire(), name, TSIG_FUDGE_SECONDS)
            .map_err(|_| ConfigError::UnsupportedAlgorithm(format!("{:?}", self.algorithm)))
    }
}

/// base64's messages quote offending bytes; keep only their kind.
fn describe_base64_error(e: &base64::DecodeError) -> String {
    match e {
        base64::DecodeError::InvalidByte(offset, _) => format!("invalid character at offset {offset}"),
        base64::DecodeError::InvalidLength(_) => "invalid length".into(),
        base64::DecodeError::InvalidLastSymbol(offset, _) => format!("invalid last symbol at offset {offset}"),
        base64::DecodeError::InvalidPadding => "invalid padding".into(),
    }
}

/// How to reach the server and what it serves for veer.
#[derive(Debug, Clone)]
pub struct Rfc2136Config {
    /// The provider's name in veer's configuration.
    pub name: String,
    /// The primary server's address (TCP).
    pub server: SocketAddr,
    /// The zones veer may update there.
    pub zones: Vec<RecordName>,
    /// The key allowed to update them.
    pub key: TsigKey,
    /// Per-request timeout (connect, then each exchange).
    pub timeout: Duration,
    /// Records (answer sets plus ownership records) per UPDATE.
    pub batch_records_max: usize,
}

impl Rfc2136Config {
    /// A configuration with a 5 s timeout and batches of up to 200 records.
    pub fn new(name: impl Into<String>, server: SocketAddr, zones: Vec<RecordName>, key: TsigKey) -> Self {
        Self { name: name.into(), server, zones, key, timeout: Duration::from_secs(5), batch_records_max: 200 }
    }
}

/// The RFC 2136 provider (see the crate docs).
pub struct Rfc2136Provider {
    config: Rfc2136Config,
    signer: TSigner,
}

impl fmt::Debug for Rfc2136Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rfc2136Provider").field("config", &self.config).finish_non_exhaustive()
    }
}

type WireClient = Client<TokioRuntimeProvider>;

impl Rfc2136Provider {
    /// Checks the configuration; connects to nothing yet.
    pub fn new(config: Rfc2136Config) -> Result<Self, ConfigError> {
        if config.zones.is_empty() {
            return Err(ConfigError::NoZones);
        }
        let signer = config.key.signer()?;
        Ok(Self { config, signer })
    }

    fn zone_of(&self, name: &RecordName) -> Result<&RecordName, ProviderError> {
        self.config
            .zones
            .iter()
            .filter(|z| name.is_within(z))
            .max_by_key(|z| z.as_str().len())
            .ok_or_else(|| ProviderError::Rejected(format!("{name} is in no zone of provider {}", self.config.name)))
    }

    /// A fresh TCP connection per operation: nothing to keep alive or to
    /// reconnect, and loopback/LAN connects cost far less than the write budget.
    async fn connect(&self) -> Result<WireClient, ProviderError> {
        let timeout = self.config.timeout;
        let (connect, handle) =
            TcpClientStream::new(self.config.server, None, Some(timeout), TokioRuntimeProvider::new());
        let stream = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| ProviderError::Unavailable(format!("connecting to {} timed out", self.config.server)))?
            .map_err(|e| ProviderError::Unavailable(format!("cannot connect to {}: {e}", self.config.server)))?;
        let (client, background) = WireClient::with_timeout(stream, handle, timeout);
        tokio::spawn(background);
        Ok(client)
    }

    /// Queries one RRset; `None` when the name or the type does not exist.
    async fn query(
        &self,
        client: &mut WireClient,
        zone: &RecordName,
        name: &RecordName,
        rtype: RecordType,
    ) -> Result<Option<RecordSet>, ProviderError> {
        let response = client
            .query(wire_name(name), DNSClass::IN, wire_type(rtype))
            .await
            .map_err(|e| ProviderError::Unavailable(format!("query {name} {rtype} at {}: {e}", self.config.server)))?;
        match response.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            ResponseCode::ServFail => {
                return Err(ProviderError::Unavailable(format!("{} answered SERVFAIL for {name}", self.config.server)));
            }
            code => {
                return Err(ProviderError::Rejected(format!(
                    "{} answered {code} for {name} {rtype}: is zone {zone} served there?",
                    self.config.server
                )));
            }
        }
        if !response.authoritative {
            return Err(ProviderError::Rejected(format!(
                "{} is not authoritative for {name}: zone {zone} is not served there",
                self.config.server
            )));
        }
        let wanted = wire_name(name);
        let records: Vec<&Record> =
            response.answers.iter().filter(|r| r.name == wanted && r.record_type() == wire_type(rtype)).collect();
        let Some(ttl) = records.iter().map(|r| r.ttl).min() else { return Ok(None) };
        let answers = records
            .iter()
            .filter_map(|r| value_of(&r.data))
            .map(|value| Answer { set_id: None, value, weight: None })
            .collect();
        Ok(Some(RecordSet::new(name.clone(), rtype, ttl, answers)))
    }

    async fn read_observed(&self, name: &RecordName, rtype: RecordType) -> Result<Observed, ProviderError> {
        let zone = self.zone_of(name)?.clone();
        let mut client = self.connect().await?;
        let records = self.query(&mut client, &zone, name, rtype).await?;
        let txt = self.query(&mut client, &zone, &name.ownership_name(), RecordType::TXT).await?;
        let txt_values: Vec<String> = txt.map(|t| t.answers.into_iter().map(|a| a.value).collect()).unwrap_or_default();
        Ok(Observed::from_parts(name.clone(), rtype, records, &txt_values))
    }

    /// Builds the one UPDATE message of a batch (see the crate docs).
    fn update_message(&self, batch: &ChangeBatch) -> Result<Message, ProviderError> {
        let mut message = Message::query();
        message.metadata.op_code = OpCode::Update;
        message.metadata.recursion_desired = false;
        let mut zone = Query::query(wire_name(&batch.zone), WireType::SOA);
        zone.set_query_class(DNSClass::IN);
        message.add_zone(zone);
        let capabilities = self.capabilities();
        for change in &batch.changes {
            let name = change.name();
            let owner_name = name.ownership_name();
            let rtype = change.expected.rtype;
            // Prerequisites: exactly what was read, or nothing.
            match &change.expected.records {
                Some(set) => {
                    for answer in &set.answers {
                        message.add_pre_requisite(record(name, rtype, 0, &answer.value)?);
                    }
                }
                None => message.add_pre_requisite(with_class(
                    Record::update0(wire_name(name), 0, wire_type(rtype)),
                    DNSClass::NONE,
                )),
            }
            match &change.expected.ownership {
                Some(o) => message.add_pre_requisite(record(&owner_name, RecordType::TXT, 0, &o.encode())?),
                None => message.add_pre_requisite(with_class(
                    Record::update0(wire_name(&owner_name), 0, WireType::TXT),
                    DNSClass::NONE,
                )),
            }
            // Updates: replace the answers and the ownership record.
            let published = capabilities.published(&change.desired);
            message.add_update(with_class(Record::update0(wire_name(name), 0, wire_type(rtype)), DNSClass::ANY));
            for answer in &published.answers {
                message.add_update(record(name, rtype, published.ttl, &answer.value)?);
            }
            message.add_update(with_class(Record::update0(wire_name(&owner_name), 0, WireType::TXT), DNSClass::ANY));
            message.add_update(record(&owner_name, RecordType::TXT, published.ttl, &change.ownership.encode())?);
        }
        Ok(message)
    }

    async fn apply_batch(&self, batch: &ChangeBatch) -> Result<(), ProviderError> {
        batch.check(&self.capabilities())?;
        if !self.config.zones.contains(&batch.zone) {
            return Err(ProviderError::Rejected(format!(
                "zone {} is not configured for {}",
                batch.zone, self.config.name
            )));
        }
        let mut message = self.update_message(batch)?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let verifier = message
            .finalize(&self.signer, now)
            .map_err(|e| ProviderError::Rejected(format!("cannot sign the update: {e}")))?;
        let client = self.connect().await?;
        let mut options = DnsRequestOptions::default();
        options.use_edns = false;
        let mut replies = client.send(DnsRequest::new(message, options));
        // From here on the update may have reached the server: failures are ambiguous.
        let response = match replies.next().await {
            Some(Ok(response)) => response,
            Some(Err(e)) => return Err(ambiguous(&self.config.server, &e)),
            None => return Err(ProviderError::Ambiguous(format!("{} closed without a reply", self.config.server))),
        };
        let unexplained_notauth = response.response_code == ResponseCode::NotAuth
            && response.signature().is_none_or(|s| s.data.error.is_none());
        let result = self.interpret(batch, response, verifier);
        if unexplained_notauth {
            // NOTAUTH without a TSIG error means "not authoritative": say so plainly
            // when an SOA query confirms that the zone is not served.
            let mut client = self.connect().await?;
            if let Err(ProviderError::Rejected(why)) = self.check_zone(&mut client, &batch.zone).await {
                return Err(ProviderError::Rejected(format!("update refused with NOTAUTH: {why}")));
            }
        }
        result
    }

    fn interpret(
        &self,
        batch: &ChangeBatch,
        response: DnsResponse,
        verifier: Option<hickory_proto::rr::TSigVerifier>,
    ) -> Result<(), ProviderError> {
        let server = self.config.server;
        let key = self.config.key.name();
        let zone = &batch.zone;
        let tsig_error = response.signature().and_then(|s| s.data.error);
        match response.response_code {
            ResponseCode::NoError => {
                let verified = match verifier {
                    Some(mut v) => v.verify(response.as_buffer()).map(|_| ()).map_err(|e| e.to_string()),
                    None => Err("no verifier".into()),
                };
                verified.map_err(|e| {
                    ProviderError::Ambiguous(format!(
                        "{server} answered NOERROR but its reply is not validly signed by key {key:?} ({e})"
                    ))
                })
            }
            code
            @ (ResponseCode::NXRRSet | ResponseCode::YXRRSet | ResponseCode::NXDomain | ResponseCode::YXDomain) => {
                Err(ProviderError::Conflict(format!(
                    "{server} refused the update with {code}: a name in zone {zone} changed since it was read"
                )))
            }
            ResponseCode::NotAuth => Err(ProviderError::Rejected(match tsig_error {
                Some(TsigError::BadSig) => format!(
                    "{server} answered NOTAUTH (TSIG BADSIG): the secret of key {key:?} does not match the server's"
                ),
                Some(TsigError::BadKey) => format!(
                    "{server} answered NOTAUTH (TSIG BADKEY): the server does not know key {key:?} with this algorithm"
                ),
                Some(TsigError::BadTime) => {
                    format!("{server} answered NOTAUTH (TSIG BADTIME): the clocks differ by more than the fudge")
                }
                Some(other) => format!("{server} answered NOTAUTH (TSIG error {other:?}) for key {key:?}"),
                None => format!(
                    "{server} answered NOTAUTH: it is not authoritative for zone {zone} (zone not served) \
                     or does not accept key {key:?} for it"
                ),
            })),
            ResponseCode::Refused => Err(ProviderError::Rejected(format!(
                "{server} answered REFUSED: it does not allow key {key:?} to update zone {zone} \
                 (check allow-update / the update ACL and that the zone is served)"
            ))),
            ResponseCode::NotZone => {
                Err(ProviderError::Rejected(format!("{server} answered NOTZONE: a name is outside zone {zone}")))
            }
            ResponseCode::ServFail => Err(ProviderError::Unavailable(format!(
                "{server} answered SERVFAIL to the update of zone {zone} (nothing was applied)"
            ))),
            code => Err(ProviderError::Rejected(format!("{server} answered {code} to the update of zone {zone}"))),
        }
    }

    /// Checks that the server is authoritative for every configured zone (an SOA
    /// query each), so that a zone that is not served is reported at start.
    pub async fn check_zones(&self) -> Result<(), ProviderError> {
        let mut client = self.connect().await?;
        for zone in &self.config.zones {
            self.check_zone(&mut client, zone).await?;
        }
        Ok(())
    }

    async fn check_zone(&self, client: &mut WireClient, zone: &RecordName) -> Result<(), ProviderError> {
        let response = client
            .query(wire_name(zone), DNSClass::IN, WireType::SOA)
            .await
            .map_err(|e| ProviderError::Unavailable(format!("SOA query for {zone}: {e}")))?;
        let has_soa = response.answers.iter().any(|r| r.record_type() == WireType::SOA);
        if response.response_code != ResponseCode::NoError || !response.authoritative || !has_soa {
            return Err(ProviderError::Rejected(format!(
                "{} does not serve zone {zone} (SOA query answered {}{})",
                self.config.server,
                response.response_code,
                if response.authoritative { "" } else { ", not authoritative" }
            )));
        }
        Ok(())
    }
}

fn ambiguous(server: &SocketAddr, e: &NetError) -> ProviderError {
    ProviderError::Ambiguous(format!("no reply from {server} to an update that may have landed: {e}"))
}

fn with_class(mut record: Record, class: DNSClass) -> Record {
    record.dns_class = class;
    record
}

fn wire_name(name: &RecordName) -> Name {
    Name::from_ascii(name.as_str()).expect("a RecordName is a valid DNS name")
}

fn wire_type(rtype: RecordType) -> WireType {
    match rtype {
        RecordType::A => WireType::A,
        RecordType::AAAA => WireType::AAAA,
        RecordType::CNAME => WireType::CNAME,
        RecordType::TXT => WireType::TXT,
    }
}

/// A record of class IN with the value parsed for its type.
fn record(name: &RecordName, rtype: RecordType, ttl: u32, value: &str) -> Result<Record, ProviderError> {
    let bad = || ProviderError::Rejected(format!("{name}: {value:?} is not valid {rtype} data"));
    let data = match rtype {
        RecordType::A => RData::A(A(value.parse().map_err(|_| bad())?)),
        RecordType::AAAA => RData::AAAA(AAAA(value.parse().map_err(|_| bad())?)),
        RecordType::CNAME => RData::CNAME(CNAME(Name::from_ascii(value).map_err(|_| bad())?)),
        RecordType::TXT if value.len() <= 255 => RData::TXT(TXT::new(vec![value.to_string()])),
        RecordType::TXT => return Err(bad()),
    };
    Ok(Record::from_rdata(wire_name(name), ttl, data))
}

/// The value of a record as veer writes it.
fn value_of(data: &RData) -> Option<String> {
    Some(match data {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(a) => a.0.to_string(),
        RData::CNAME(c) => c.0.to_ascii().to_ascii_lowercase(),
        RData::TXT(t) => t.txt_data.iter().map(|s| String::from_utf8_lossy(s)).collect(),
        _ => return None,
    })
}

impl Provider for Rfc2136Provider {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            weighting: Weighting::SetOnly,
            batch_records_max: self.config.batch_records_max,
            atomic_batches: true,
            cas: CasPrimitive::Rfc2136Prerequisite,
            answer_ids: false,
        }
    }

    fn zones(&self) -> &[RecordName] {
        &self.config.zones
    }

    fn read<'a>(&'a self, name: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed> {
        Box::pin(self.read_observed(name, rtype))
    }

    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        Box::pin(self.apply_batch(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_B64: &str = "c3VwZXItc2VjcmV0LXRzaWcta2V5LW1hdGVyaWFsIQ==";

    #[test]
    fn the_secret_never_appears_in_debug_output() {
        let key = TsigKey::from_base64("k", TsigAlgorithm::HmacSha256, SECRET_B64).unwrap();
        let config = Rfc2136Config::new(
            "bind",
            "127.0.0.1:53".parse().unwrap(),
            vec![RecordName::parse("example.test.").unwrap()],
            key,
        );
        let provider = Rfc2136Provider::new(config).unwrap();
        let text = format!("{provider:?} {:?}", provider.config.key);
        assert!(!text.contains(SECRET_B64), "{text}");
        assert!(!text.contains("super-secret"), "{text}");
        assert!(text.contains("<redacted>"));
    }

    #[test]
    fn a_bad_secret_is_reported_without_quoting_it() {
        let secret = "not base64 at all: hunter2!";
        let error = TsigKey::from_base64("k", TsigAlgorithm::HmacSha512, secret).unwrap_err();
        assert!(matches!(error, ConfigError::BadSecret { .. }));
        let text = format!("{error} {error:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(
            TsigKey::new("k", TsigAlgorithm::HmacSha256, Vec::new()).unwrap_err(),
            ConfigError::EmptySecret("k".into())
        );
    }

    #[test]
    fn only_sha256_and_sha512_are_accepted() {
        assert_eq!("HMAC-SHA256".parse::<TsigAlgorithm>(), Ok(TsigAlgorithm::HmacSha256));
        assert_eq!("hmac-sha512".parse::<TsigAlgorithm>(), Ok(TsigAlgorithm::HmacSha512));
        assert!(matches!("hmac-md5".parse::<TsigAlgorithm>(), Err(ConfigError::UnsupportedAlgorithm(_))));
    }

    fn sample_batch() -> ChangeBatch {
        let name = RecordName::parse("www.example.test.").unwrap();
        let answers = vec![Answer { set_id: None, value: "192.0.2.1".into(), weight: None }];
        let desired = RecordSet::new(name.clone(), RecordType::A, 60, answers);
        let ownership =
            veer_provider::OwnershipRecord { owner: "o".into(), generation: 1, epoch: 1, policy_hash: "p".into() };
        ChangeBatch {
            zone: RecordName::parse("example.test.").unwrap(),
            changes: vec![veer_provider::Change::new(Observed::absent(name, RecordType::A), desired, ownership)],
        }
    }

    fn sample_provider(secret: &[u8]) -> Rfc2136Provider {
        let key = TsigKey::new("k", TsigAlgorithm::HmacSha256, secret.to_vec()).unwrap();
        let zones = vec![RecordName::parse("example.test.").unwrap()];
        Rfc2136Provider::new(Rfc2136Config::new("x", "127.0.0.1:53".parse().unwrap(), zones, key)).unwrap()
    }

    #[test]
    fn a_noerror_reply_that_is_not_validly_signed_is_ambiguous() {
        let provider = sample_provider(b"our secret");
        let batch = sample_batch();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();

        // Unsigned NOERROR: cannot be trusted to mean that the update landed.
        let mut request = provider.update_message(&batch).unwrap();
        let verifier = request.finalize(&provider.signer, now).unwrap();
        let reply = Message::response(request.metadata.id, OpCode::Update);
        let result = provider.interpret(&batch, DnsResponse::from_message(reply).unwrap(), verifier);
        assert!(matches!(result, Err(ProviderError::Ambiguous(m)) if m.contains("not validly signed")));

        // NOERROR signed with another secret: the same.
        let forger = sample_provider(b"someone else's secret");
        let mut request = provider.update_message(&batch).unwrap();
        let verifier = request.finalize(&provider.signer, now).unwrap();
        let mut reply = Message::response(request.metadata.id, OpCode::Update);
        reply.finalize(&forger.signer, now).unwrap();
        let bytes = reply.to_vec().unwrap();
        let result = provider.interpret(&batch, DnsResponse::from_buffer(bytes).unwrap(), verifier);
        assert!(matches!(result, Err(ProviderError::Ambiguous(_))), "{result:?}");
    }

    #[test]
    fn failed_prerequisites_are_conflicts() {
        let provider = sample_provider(b"our secret");
        let batch = sample_batch();
        for code in [ResponseCode::NXRRSet, ResponseCode::YXRRSet, ResponseCode::NXDomain, ResponseCode::YXDomain] {
            let mut reply = Message::response(1, OpCode::Update);
            reply.metadata.response_code = code;
            let result = provider.interpret(&batch, DnsResponse::from_message(reply).unwrap(), None);
            assert!(matches!(result, Err(ProviderError::Conflict(_))), "{code}: {result:?}");
        }
    }

    #[test]
    fn one_update_carries_prerequisites_on_both_records_and_replaces_both() {
        let provider = sample_provider(b"s");
        let message = provider.update_message(&sample_batch()).unwrap();
        assert_eq!(message.metadata.op_code, OpCode::Update);
        // Prerequisites: A and TXT "RRset does not exist" (class NONE).
        assert_eq!(message.answers.len(), 2);
        assert!(message.answers.iter().all(|r| r.dns_class == DNSClass::NONE && r.ttl == 0));
        // Updates: delete A, add A, delete TXT, add TXT.
        let kinds: Vec<(WireType, DNSClass)> =
            message.authorities.iter().map(|r| (r.record_type(), r.dns_class)).collect();
        assert_eq!(
            kinds,
            vec![
                (WireType::A, DNSClass::ANY),
                (WireType::A, DNSClass::IN),
                (WireType::TXT, DNSClass::ANY),
                (WireType::TXT, DNSClass::IN)
            ]
        );
    }

    #[test]
    fn a_provider_without_zones_is_refused() {
        let key = TsigKey::from_base64("k", TsigAlgorithm::HmacSha256, SECRET_B64).unwrap();
        let config = Rfc2136Config::new("x", "127.0.0.1:53".parse().unwrap(), Vec::new(), key);
        assert_eq!(Rfc2136Provider::new(config).unwrap_err(), ConfigError::NoZones);
    }
}
