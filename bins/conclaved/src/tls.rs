//! The `[tls]` table: certificate files for the client and peer listeners, checked at load, and
//! the rule that plaintext on a non-loopback address needs `insecure = true`.
//!
//! Client side: `client_cert` + `client_key` turn TLS on for the etcd API; `client_ca` adds
//! client certificate authentication (every client must present a certificate from that CA).
//! Peer side: `peer_cert` + `peer_key` + `peer_ca` turn on mutual TLS between members; the peer
//! certificate must name this node as `node-<id>.conclave` (see `conclave_transport::node_name`).
//! Every file is read and parsed when the config loads, so a bad path or a key that does not
//! match its certificate stops the server with exit code 2 before anything is bound.

use conclave_core::NodeId;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Certificate and key files, PEM.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// The etcd API's server certificate (chain), PEM. With `client_key`, clients speak TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    /// The private key of `client_cert`, PEM (PKCS#8, PKCS#1 or SEC1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    /// CA certificate(s) that sign client certificates. When set, every client must present one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
    /// This member's peer certificate, naming it `node-<id>.conclave`; used both to accept and
    /// to dial peers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_cert: Option<PathBuf>,
    /// The private key of `peer_cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_key: Option<PathBuf>,
    /// The CA that signs every member's peer certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_ca: Option<PathBuf>,
}

/// The PEM contents, read and checked.
#[derive(Clone)]
pub struct LoadedTls {
    /// The etcd API's TLS configuration, when on.
    pub client: Option<tonic::transport::ServerTlsConfig>,
    /// Whether clients must present a certificate.
    pub client_cert_auth: bool,
    /// Mutual TLS between members, when on.
    pub peer: Option<conclave_transport::PeerTls>,
}

impl std::fmt::Debug for LoadedTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedTls")
            .field("client", &self.client.is_some())
            .field("client_cert_auth", &self.client_cert_auth)
            .field("peer", &self.peer.is_some())
            .finish()
    }
}

impl TlsSettings {
    /// True when the etcd API is served over TLS.
    pub fn client_tls(&self) -> bool {
        self.client_cert.is_some()
    }

    /// True when members speak mutual TLS.
    pub fn peer_tls(&self) -> bool {
        self.peer_cert.is_some()
    }

    /// Checks that the keys come in complete sets and that every file exists, parses and fits;
    /// returns the loaded material. Messages name the key, the path and the problem.
    pub fn load(&self, node: NodeId) -> Result<LoadedTls, String> {
        let client = match (&self.client_cert, &self.client_key) {
            (None, None) => {
                if self.client_ca.is_some() {
                    return Err("`tls.client_ca` is set but `tls.client_cert` and `tls.client_key` are not: client certificate authentication needs TLS on the client listener".into());
                }
                None
            }
            (Some(_), None) => {
                return Err(
                    "`tls.client_cert` is set without `tls.client_key`: give both or neither"
                        .into(),
                );
            }
            (None, Some(_)) => {
                return Err(
                    "`tls.client_key` is set without `tls.client_cert`: give both or neither"
                        .into(),
                );
            }
            (Some(cert), Some(key)) => {
                let (cert_pem, key_pem) = pair("tls.client_cert", cert, "tls.client_key", key)?;
                let identity = tonic::transport::Identity::from_pem(cert_pem, key_pem);
                let mut config = tonic::transport::ServerTlsConfig::new().identity(identity);
                if let Some(ca) = &self.client_ca {
                    let ca_pem = ca_file("tls.client_ca", ca)?;
                    config = config
                        .client_ca_root(tonic::transport::Certificate::from_pem(ca_pem))
                        .client_auth_optional(false);
                }
                Some(config)
            }
        };
        let peer_keys = [
            ("tls.peer_cert", &self.peer_cert),
            ("tls.peer_key", &self.peer_key),
            ("tls.peer_ca", &self.peer_ca),
        ];
        let peer = if peer_keys.iter().all(|(_, v)| v.is_none()) {
            None
        } else {
            if let Some((missing, _)) = peer_keys.iter().find(|(_, v)| v.is_none()) {
                return Err(format!(
                    "`{missing}` is missing: peer TLS is mutual and needs all of `tls.peer_cert`, `tls.peer_key` and `tls.peer_ca`"
                ));
            }
            let (cert, key, ca) = (
                self.peer_cert.as_ref().expect("checked"),
                self.peer_key.as_ref().expect("checked"),
                self.peer_ca.as_ref().expect("checked"),
            );
            let (cert_pem, key_pem) = pair("tls.peer_cert", cert, "tls.peer_key", key)?;
            let ca_pem = ca_file("tls.peer_ca", ca)?;
            let leaf = certificates("tls.peer_cert", cert, &cert_pem)?.remove(0);
            conclave_transport::certificate_names_node(&leaf, node).map_err(|error| {
                let error = error.to_string().replace("the peer's certificate", "the certificate");
                format!(
                    "`tls.peer_cert` = {}: {error}, and this is node {node}: each member's peer certificate names it (docs/security.md)",
                    cert.display()
                )
            })?;
            let peer = conclave_transport::PeerTls::new(&cert_pem, &key_pem, &ca_pem).map_err(
                |error| {
                    format!(
                        "`tls.peer_cert` = {}, `tls.peer_key` = {}, `tls.peer_ca` = {}: {error}",
                        cert.display(),
                        key.display(),
                        ca.display()
                    )
                },
            )?;
            Some(peer)
        };
        Ok(LoadedTls {
            client_cert_auth: self.client_ca.is_some() && client.is_some(),
            client,
            peer,
        })
    }
}

/// Refuses plaintext on a non-loopback address unless `insecure` says it is meant.
pub fn check_plaintext(
    key: &str,
    address: SocketAddr,
    tls: bool,
    tls_keys: &str,
    insecure: bool,
) -> Result<(), String> {
    if tls || insecure || address.ip().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "`{key}` = {address} is not a loopback address and {tls_keys} is not set, so it would accept plaintext from the network; configure TLS (docs/security.md) or set `insecure = true` (CONCLAVE_INSECURE=true) to run without it"
    ))
}

/// The plaintext listeners on non-loopback addresses, for the startup warning.
pub fn plaintext_exposed(listens: &[(&'static str, SocketAddr, bool)]) -> Vec<String> {
    listens
        .iter()
        .filter(|(_, address, tls)| !tls && !address.ip().is_loopback())
        .map(|(key, address, _)| format!("{key} = {address}"))
        .collect()
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("`{key}` = {}: cannot read: {e}", path.display()))
}

/// Every certificate in a PEM file; at least one, each a well-formed X.509 certificate.
fn certificates(
    key: &str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, String> {
    let bad = |problem: String| format!("`{key}` = {}: {problem}", path.display());
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no certificate (-----BEGIN CERTIFICATE-----) in the file".into()));
    }
    for cert in &certs {
        webpki::EndEntityCert::try_from(cert)
            .map_err(|e| bad(format!("a certificate in the file does not parse: {e}")))?;
    }
    Ok(certs)
}

/// A CA file: certificates that can anchor a chain.
fn ca_file(key: &str, path: &Path) -> Result<Vec<u8>, String> {
    let pem = read(key, path)?;
    for cert in certificates(key, path, &pem)? {
        webpki::anchor_from_trusted_cert(&cert).map_err(|e| {
            format!("`{key}` = {}: not usable as a CA certificate: {e}", path.display())
        })?;
    }
    Ok(pem)
}

/// A certificate and its private key: both parse and the key is the certificate's.
fn pair(
    cert_key: &str,
    cert_path: &Path,
    key_key: &str,
    key_path: &Path,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let cert_pem = read(cert_key, cert_path)?;
    let key_pem = read(key_key, key_path)?;
    let chain = certificates(cert_key, cert_path, &cert_pem)?;
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "`{key_key}` = {}: no private key (PKCS#8, PKCS#1 or SEC1 PEM) in the file: {e}",
            key_path.display()
        )
    })?;
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(chain, private_key, &provider).map_err(|e| {
        format!(
            "`{key_key}` = {} does not go with `{cert_key}` = {}: {e}",
            key_path.display(),
            cert_path.display()
        )
    })?;
    Ok((cert_pem, key_pem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_on_loopback_is_fine_elsewhere_needs_insecure() {
        let lo: SocketAddr = "127.0.0.1:2379".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:2379".parse().unwrap();
        let v6: SocketAddr = "[::1]:2379".parse().unwrap();
        assert!(check_plaintext("client_listen", lo, false, "x", false).is_ok());
        assert!(check_plaintext("client_listen", v6, false, "x", false).is_ok());
        let error =
            check_plaintext("client_listen", any, false, "`tls.client_cert`", false).unwrap_err();
        assert!(error.contains("client_listen") && error.contains("insecure"), "{error}");
        assert!(check_plaintext("client_listen", any, false, "x", true).is_ok());
        assert!(check_plaintext("client_listen", any, true, "x", false).is_ok());
    }

    #[test]
    fn listeners_default_to_loopback() {
        let config = crate::config::Config::default();
        for address in [config.client_listen, config.peer_listen, config.metrics_listen] {
            assert!(address.ip().is_loopback(), "{address} is not loopback by default");
        }
        assert!(!config.insecure);
    }

    #[test]
    fn exposed_plaintext_listeners_are_listed_for_the_warning() {
        let any: SocketAddr = "0.0.0.0:2380".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:2379".parse().unwrap();
        let listed = plaintext_exposed(&[
            ("client_listen", lo, false),
            ("peer_listen", any, false),
            ("client_listen", any, true),
        ]);
        assert_eq!(listed, ["peer_listen = 0.0.0.0:2380"]);
    }

    #[test]
    fn incomplete_sets_name_the_missing_key() {
        let only_cert = TlsSettings { client_cert: Some("c.pem".into()), ..TlsSettings::default() };
        assert!(only_cert.load(NodeId(1)).unwrap_err().contains("tls.client_key"));
        let only_key = TlsSettings { client_key: Some("k.pem".into()), ..TlsSettings::default() };
        assert!(only_key.load(NodeId(1)).unwrap_err().contains("tls.client_cert"));
        let ca_alone = TlsSettings { client_ca: Some("ca.pem".into()), ..TlsSettings::default() };
        assert!(ca_alone.load(NodeId(1)).unwrap_err().contains("tls.client_ca"));
        let no_peer_ca = TlsSettings {
            peer_cert: Some("p.pem".into()),
            peer_key: Some("p.key".into()),
            ..TlsSettings::default()
        };
        assert!(no_peer_ca.load(NodeId(1)).unwrap_err().contains("`tls.peer_ca` is missing"));
    }

    #[test]
    fn a_missing_file_is_named_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let settings = TlsSettings {
            client_cert: Some(missing.clone()),
            client_key: Some(missing.clone()),
            ..TlsSettings::default()
        };
        let error = settings.load(NodeId(1)).unwrap_err();
        assert!(error.contains("`tls.client_cert`"), "{error}");
        assert!(error.contains("nope.pem") && error.contains("cannot read"), "{error}");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cert.pem");
        std::fs::write(&path, "hello").unwrap();
        let settings = TlsSettings {
            client_cert: Some(path.clone()),
            client_key: Some(path),
            ..TlsSettings::default()
        };
        let error = settings.load(NodeId(1)).unwrap_err();
        assert!(error.contains("`tls.client_cert`") && error.contains("no certificate"), "{error}");
    }
}
