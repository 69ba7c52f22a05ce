//! Mutual TLS between members, and the rule that ties a certificate to a node id.
//!
//! Every member holds one peer certificate, signed by the cluster's peer CA, that names it with
//! the DNS subject alternative name `node-<id>.conclave` ([`node_name`]). The same certificate
//! serves both ends of a link:
//!
//! - the receiving side requires a client certificate from the peer CA (the TLS handshake checks
//!   the chain), then [`PeerListener`](crate::PeerListener) checks that the certificate names
//!   the node id the link's hello claims in its `from` field ([`certificate_names_node`]);
//! - the dialing side verifies the server's chain against the peer CA and asks for the name of
//!   the node it meant to dial, so a member cannot answer in another member's place.
//!
//! Names are matched as TLS matches host names (rustls-webpki), which never lets a wildcard
//! stand for a label directly under a one-label suffix: `*.conclave` names no node, so one
//! certificate speaks for one node.

use conclave_core::NodeId;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, DnsName, ServerName};
use std::fmt;
use std::sync::Arc;

/// The DNS name a member's peer certificate must carry: `node-<id>.conclave`.
pub fn node_name(id: NodeId) -> String {
    format!("node-{}.conclave", id.0)
}

/// A peer certificate that does not prove the node id it was used for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerIdentityError {
    #[error("the peer presented no client certificate")]
    NoCertificate,
    #[error("the peer's certificate cannot be read: {0}")]
    Unreadable(String),
    #[error(
        "the peer's certificate does not name node {claimed} (expected the DNS name {expected})"
    )]
    WrongNode { claimed: NodeId, expected: String },
}

/// Checks that `certificate` (already verified against the peer CA by the handshake) names
/// `node` by the [`node_name`] convention.
pub fn certificate_names_node(
    certificate: &CertificateDer<'_>,
    node: NodeId,
) -> Result<(), PeerIdentityError> {
    let cert = webpki::EndEntityCert::try_from(certificate)
        .map_err(|e| PeerIdentityError::Unreadable(e.to_string()))?;
    let name = node_name(node);
    let dns = DnsName::try_from(name.as_str()).expect("node names are valid DNS names");
    cert.verify_is_valid_for_subject_name(&ServerName::DnsName(dns))
        .map_err(|_| PeerIdentityError::WrongNode { claimed: node, expected: name })
}

/// A member's peer certificate, its key and the peer CA, ready to serve and to dial with.
#[derive(Clone)]
pub struct PeerTls {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("PeerTls").finish_non_exhaustive()
    }
}

/// Peer TLS material that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer TLS: {0}")]
pub struct PeerTlsError(String);

impl PeerTls {
    /// Parses the certificate chain, key and CA (PEM) and builds both rustls configurations:
    /// the listener presents the certificate and requires a client certificate from the CA;
    /// the dialer trusts only the CA and presents the same certificate.
    pub fn new(cert_pem: &[u8], key_pem: &[u8], ca_pem: &[u8]) -> Result<Self, PeerTlsError> {
        let fail = |what: &str, error: &dyn fmt::Display| PeerTlsError(format!("{what}: {error}"));
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| fail("the certificate does not parse", &e))?;
        if chain.is_empty() {
            return Err(PeerTlsError("the certificate file holds no certificate".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| fail("the private key does not parse", &e))?;
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca_pem) {
            let ca = ca.map_err(|e| fail("the CA does not parse", &e))?;
            roots.add(ca).map_err(|e| fail("the CA is not a usable trust anchor", &e))?;
        }
        if roots.is_empty() {
            return Err(PeerTlsError("the CA file holds no certificate".into()));
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| fail("cannot verify clients with the CA", &e))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| fail("no TLS version", &e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| fail("the certificate and key do not go together", &e))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| fail("no TLS version", &e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| fail("the certificate and key do not go together", &e))?;
        Ok(Self { server: Arc::new(server), client: Arc::new(client) })
    }

    /// The listener's side: present our certificate, require one from the peer CA.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    /// The dialing side: trust only the peer CA and present our own certificate. The caller
    /// asks for the server name of the node it means to dial ([`server_name`]).
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client.clone()
    }
}

/// The name the dialer demands of `peer`'s certificate.
pub fn server_name(peer: NodeId) -> ServerName<'static> {
    let name = DnsName::try_from(node_name(peer)).expect("node names are valid DNS names");
    ServerName::DnsName(name)
}
