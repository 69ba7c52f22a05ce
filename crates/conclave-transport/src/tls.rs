//! Mutual TLS between members, and the rule that ties a certificate to a node id.
//!
//! Every member holds one peer certificate, signed by the cluster's peer CA, that names it with
//! the DNS subject alternative name `node-<id>.conclave` ([`node_name`]). The same certificate
//! serves both ends of a link:
//!
//! - the receiving side requires a client certificate from the peer CA (the TLS handshake checks
//!   the chain), then [`PeerService`](crate::PeerService) checks that the certificate names the
//!   node id each batch claims in its `from` field ([`certificate_names_node`]);
//! - the dialing side verifies the server's chain against the peer CA and asks for the name of
//!   the node it meant to dial, so a member cannot answer in another member's place.
//!
//! Names are matched as TLS matches host names (rustls-webpki), which never lets a wildcard
//! stand for a label directly under a one-label suffix: `*.conclave` names no node, so one
//! certificate speaks for one node.

use conclave_core::NodeId;
use rustls_pki_types::{CertificateDer, DnsName, ServerName};
use std::fmt;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

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

/// A member's peer certificate, its key and the peer CA, as PEM. The caller has checked that
/// they parse (conclaved does at config load); tonic parses them again when it builds its
/// rustls configurations.
#[derive(Clone)]
pub struct PeerTls {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    ca_pem: Vec<u8>,
}

impl fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("PeerTls").finish_non_exhaustive()
    }
}

impl PeerTls {
    pub fn new(cert_pem: Vec<u8>, key_pem: Vec<u8>, ca_pem: Vec<u8>) -> Self {
        Self { cert_pem, key_pem, ca_pem }
    }

    /// The listener's side: present our certificate, require one from the peer CA.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            .client_auth_optional(false)
    }

    /// The dialing side towards `peer`: trust only the peer CA, expect the server to be named
    /// `node-<peer>.conclave`, and present our own certificate.
    pub fn client_config(&self, peer: NodeId) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .domain_name(node_name(peer))
    }
}
