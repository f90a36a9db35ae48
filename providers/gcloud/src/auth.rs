//! Google access tokens: a service-account key (OAuth 2.0 JWT bearer grant,
//! RS256-signed with `jsonwebtoken` on aws-lc-rs, the TLS stack's own crypto, so
//! no second crypto library such as `ring` is added), or the metadata server
//! (Workload Identity on GKE, the attached service account elsewhere).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use veer_provider::ProviderError;

use crate::Secret;
use veer_provider::http::token::{Fetched, lifetime};
use veer_provider::http::{Effect, scrub, status_error, transport_error};

/// The OAuth scope for reading and writing Cloud DNS.
pub const DNS_SCOPE: &str = "https://www.googleapis.com/auth/ndev.clouddns.readwrite";
/// The metadata server's address inside Google Cloud.
pub const DEFAULT_METADATA_ENDPOINT: &str = "http://metadata.google.internal";

/// A service-account key as Google issues it (the JSON key file's fields veer needs).
#[derive(Debug, Clone)]
pub struct ServiceAccountKey {
    /// The service account (`client_email`), the JWT issuer.
    pub client_email: String,
    /// The PKCS#8 PEM private key; never printed.
    pub private_key: Secret,
    /// The key's id, sent as the JWT `kid`.
    pub private_key_id: Option<String>,
    /// Where assertions are exchanged for tokens (`token_uri`); tests point it at a fake.
    pub token_uri: String,
}

impl ServiceAccountKey {
    /// Parses the contents of a key file (the caller reads the file).
    pub fn from_json(text: &str) -> Result<Self, ProviderError> {
        let json: Value = serde_json::from_str(text)
            .map_err(|e| ProviderError::Rejected(format!("the service-account key is not JSON: {e}")))?;
        let field = |name: &str| {
            json[name]
                .as_str()
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| ProviderError::Rejected(format!("the service-account key lacks `{name}`")))
        };
        if json["type"].as_str() != Some("service_account") {
            return Err(ProviderError::Rejected("the key file is not of type `service_account`".into()));
        }
        Ok(Self {
            client_email: field("client_email")?,
            private_key: Secret::new(field("private_key")?),
            private_key_id: json["private_key_id"].as_str().map(str::to_string),
            token_uri: field("token_uri")?,
        })
    }
}

/// How veer authenticates to Google Cloud.
#[derive(Debug, Clone)]
pub enum GcloudCredential {
    /// A service-account key.
    ServiceAccountKey(ServiceAccountKey),
    /// The metadata server at this base URL (usually [`DEFAULT_METADATA_ENDPOINT`]).
    MetadataServer {
        /// Base URL of the metadata server.
        endpoint: String,
    },
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

/// Fetches one token with `credential`.
pub(crate) async fn fetch(client: &reqwest::Client, credential: &GcloudCredential) -> Result<Fetched, ProviderError> {
    match credential {
        GcloudCredential::ServiceAccountKey(key) => {
            let assertion = Secret::new(sign(key)?);
            let form =
                [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.expose())];
            let request = client.post(&key.token_uri).form(&form);
            exchange(request, &key.private_key, "Google token request").await
        }
        GcloudCredential::MetadataServer { endpoint } => {
            let url = format!("{endpoint}/computeMetadata/v1/instance/service-accounts/default/token");
            let request = client.get(url).query(&[("scopes", DNS_SCOPE)]).header("Metadata-Flavor", "Google");
            exchange(request, &Secret::new(""), "metadata server token request").await
        }
    }
}

/// The signed JWT assertion: one hour, the longest Google accepts.
fn sign(key: &ServiceAccountKey) -> Result<String, ProviderError> {
    let iat = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let claims = Claims { iss: &key.client_email, scope: DNS_SCOPE, aud: &key.token_uri, iat, exp: iat + 3600 };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = key.private_key_id.clone();
    let signing_key = jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.expose().as_bytes())
        .map_err(|e| ProviderError::Rejected(format!("the service-account private key is unusable: {e}")))?;
    jsonwebtoken::encode(&header, &claims, &signing_key)
        .map_err(|e| ProviderError::Rejected(format!("cannot sign the token assertion: {e}")))
}

async fn exchange(request: reqwest::RequestBuilder, secret: &Secret, what: &str) -> Result<Fetched, ProviderError> {
    let response = request.send().await.map_err(|e| transport_error(e, Effect::Read, what))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.map_err(|e| transport_error(e, Effect::Read, what))?;
    let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if !status.is_success() {
        let message = match (json["error"].as_str(), json["error_description"].as_str()) {
            (Some(code), Some(text)) => format!("{code}: {text}"),
            _ => body.clone(),
        };
        return Err(status_error(status, &headers, &scrub(&message, secret), Effect::Read, what));
    }
    let token = json["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ProviderError::Unavailable(format!("{what}: the answer has no access_token")))?;
    Ok(Fetched { token: Secret::new(token), lifetime: lifetime(json.get("expires_in")) })
}
