//! TLS client settings for https probes: one rustls stack on aws-lc-rs
//! (REFERENCE §A: mixing crypto providers panics at first use), trust from a
//! CA bundle file or the system roots, or no verification at all for labs.

use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once, OnceLock};

/// Installs aws-lc-rs as the process-wide rustls provider, once. veer builds its
/// own configs with an explicit provider, but other crates (kube, reqwest) ask
/// for the process default, and two compiled-in providers make that panic.
pub fn install_default_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first: keep it, ours are explicit.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider())).clone()
}

/// Why a TLS client config could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA bundle file could not be read or holds no certificate.
    #[error("caBundle {path}: {message}")]
    CaBundle {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// No usable system root certificate was found.
    #[error("no system CA certificates found (give caBundle)")]
    NoSystemRoots,
    /// rustls refused the settings.
    #[error("tls settings: {0}")]
    Rustls(String),
}

/// How an https probe trusts servers, and the client config built from it.
/// Equality looks at the settings only, so a reload with the same settings
/// keeps the endpoint's state.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    /// The CA bundle file (absolute or relative to the working folder), if any.
    pub ca_bundle: Option<PathBuf>,
    /// Accept any certificate.
    pub insecure_skip_verify: bool,
    /// The built config, or why it could not be built (every probe then fails with it).
    pub config: Result<Arc<ClientConfig>, TlsSetupError>,
}

impl PartialEq for TlsSetup {
    fn eq(&self, other: &Self) -> bool {
        self.ca_bundle == other.ca_bundle && self.insecure_skip_verify == other.insecure_skip_verify
    }
}

impl TlsSetup {
    /// Builds the client config for these settings (reads the CA bundle now).
    pub fn build(ca_bundle: Option<PathBuf>, insecure_skip_verify: bool) -> Self {
        let config = client_config(ca_bundle.as_deref(), insecure_skip_verify).map(Arc::new);
        Self { ca_bundle, insecure_skip_verify, config }
    }
}

/// A cache of [`TlsSetup`]s by settings, so that 10 000 endpoints of one policy
/// share one config and the CA bundle is read once per load.
#[derive(Debug, Default)]
pub struct TlsConfigs {
    built: HashMap<(Option<PathBuf>, bool), TlsSetup>,
}

impl TlsConfigs {
    /// The setup for these settings, built on first use.
    pub fn get(&mut self, ca_bundle: Option<PathBuf>, insecure_skip_verify: bool) -> TlsSetup {
        self.built
            .entry((ca_bundle.clone(), insecure_skip_verify))
            .or_insert_with(|| TlsSetup::build(ca_bundle, insecure_skip_verify))
            .clone()
    }
}

fn client_config(ca_bundle: Option<&Path>, insecure: bool) -> Result<ClientConfig, TlsSetupError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth()
    } else {
        let roots = match ca_bundle {
            Some(path) => Arc::new(bundle_roots(path)?),
            None => system_roots()?,
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    // Every probe does a full handshake: a resumed session skips certificate
    // checks, so an expired or replaced certificate would go unnoticed.
    config.resumption = Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn bundle_roots(path: &Path) -> Result<RootCertStore, TlsSetupError> {
    let failure = |message: String| TlsSetupError::CaBundle { path: path.to_path_buf(), message };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| failure(e.to_string()))? {
        let cert = cert.map_err(|e| failure(e.to_string()))?;
        roots.add(cert).map_err(|e| failure(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(failure("no certificate in file".into()));
    }
    Ok(roots)
}

fn system_roots() -> Result<Arc<RootCertStore>, TlsSetupError> {
    static ROOTS: OnceLock<Option<Arc<RootCertStore>>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            (added > 0).then(|| Arc::new(roots))
        })
        .clone()
        .ok_or(TlsSetupError::NoSystemRoots)
}

/// `insecureSkipVerify`: any certificate, any name. Handshake signatures are
/// still checked so that the TLS session itself is sound.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl AcceptAnyCertificate {
    fn algorithms(&self) -> &WebPkiSupportedAlgorithms {
        &self.0.signature_verification_algorithms
    }
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, self.algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, self.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms().supported_schemes()
    }
}

/// A short reason for a failed handshake: rustls's own error when there is one.
pub(crate) fn handshake_failure(e: &std::io::Error) -> super::ProbeFailure {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(cert)) => super::ProbeFailure::Tls(certificate_reason(cert)),
        Some(other) => super::ProbeFailure::Tls(other.to_string()),
        None => match e.kind() {
            std::io::ErrorKind::UnexpectedEof => super::ProbeFailure::Tls("connection closed during handshake".into()),
            _ => super::ProbeFailure::Tls(e.to_string()),
        },
    }
}

fn certificate_reason(e: &rustls::CertificateError) -> String {
    use rustls::CertificateError::*;
    match e {
        UnknownIssuer => "certificate not trusted (unknown issuer)".into(),
        Expired | ExpiredContext { .. } => "certificate expired".into(),
        NotValidYet | NotValidYetContext { .. } => "certificate not valid yet".into(),
        NotValidForName | NotValidForNameContext { .. } => "certificate not valid for the name".into(),
        BadSignature => "certificate has a bad signature".into(),
        Revoked => "certificate revoked".into(),
        other => format!("invalid certificate: {other:?}"),
    }
}
