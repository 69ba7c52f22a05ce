//! Mutual TLS between members on loopback, with certificates from `scripts/make-test-ca.sh`:
//! delivery, and refusal of a peer that holds a valid certificate for another node, of a server
//! that answers with another node's certificate, of a peer without a certificate and of one
//! from another CA.

use bytes::Bytes;
use conclave_core::NodeId;
use conclave_node::{Inbound, Transport};
use conclave_transport::frame::Hello;
use conclave_transport::{
    DialError, Faults, PeerIdentityError, PeerListener, PeerTls, PeerTransport, TransportConfig,
    certificate_names_node, dial,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// Two independent test CAs (three nodes each), made once per test binary by the script users
/// run.
struct Pki {
    _dir: tempfile::TempDir,
    main: PathBuf,
    other: PathBuf,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-test-ca.sh");
        let (main, other) = (dir.path().join("main"), dir.path().join("other"));
        for out in [&main, &other] {
            let status = std::process::Command::new("bash")
                .arg(&script)
                .arg(out)
                .arg("3")
                .stdout(std::process::Stdio::null())
                .status()
                .expect("bash runs scripts/make-test-ca.sh");
            assert!(status.success(), "scripts/make-test-ca.sh failed (is openssl installed?)");
        }
        Pki { _dir: dir, main, other }
    })
}

fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Node `id`'s peer certificate and key, with the CA of `root`.
fn peer_tls(root: &Path, id: u64) -> PeerTls {
    let node = root.join(format!("node-{id}"));
    PeerTls::new(
        &read(node.join("peer.pem")),
        &read(node.join("peer.key")),
        &read(root.join("peer-ca.pem")),
    )
    .unwrap()
}

fn peer_cert(root: &Path, id: u64) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(&read(root.join(format!("node-{id}/peer.pem")))).unwrap()
}

/// A TLS receiver for node `me` presenting `tls` and requiring node certificates.
async fn receiver(
    me: u64,
    members: &[u64],
    tls: &PeerTls,
) -> (SocketAddr, mpsc::Receiver<Inbound>, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(1024);
    let members: BTreeSet<NodeId> = members.iter().map(|&m| NodeId(m)).collect();
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let config = TransportConfig { tls: Some(tls.clone()), ..Default::default() };
    tokio::spawn(
        PeerListener::new(NodeId(me), members, tx, &config, "test").serve(listener, stopping),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = stopped.await;
        let _ = stopping_tx.send(true);
    });
    (addr, rx, stop)
}

fn tls_config(tls: &PeerTls) -> TransportConfig {
    TransportConfig {
        reconnect_backoff_ms_min: 10,
        reconnect_backoff_ms_max: 50,
        tls: Some(tls.clone()),
        ..Default::default()
    }
}

fn transport(me: u64, peers: &[(u64, SocketAddr)], tls: PeerTls) -> PeerTransport {
    let peers: BTreeMap<NodeId, String> =
        peers.iter().map(|(id, a)| (NodeId(*id), a.to_string())).collect();
    PeerTransport::start(NodeId(me), &peers, &tls_config(&tls), Faults::default(), "test")
}

/// Opens a link claiming to be `from`, dialing as node `cert_of` would, and sends one payload.
async fn send_as(
    addr: SocketAddr,
    cert_of: &PeerTls,
    target: u64,
    from: u64,
) -> Result<(), DialError> {
    let mut link =
        dial(NodeId(from), NodeId(target), &addr.to_string(), &tls_config(cert_of)).await?;
    link.send(b"hello").await.expect("an accepted link takes a payload");
    Ok(())
}

/// Dials with a raw rustls client `config` (not a member's), says hello as node 2 to node 1,
/// and returns what came back: the bytes, or the error that ended the link.
async fn raw_hello(addr: SocketAddr, config: rustls::ClientConfig) -> Result<Vec<u8>, String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = conclave_transport::node_name(NodeId(1)).try_into().unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut stream = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
    stream
        .write_all(&Hello { from: NodeId(2), to: NodeId(1) }.encode())
        .await
        .map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    match read {
        Ok(Ok(_)) if answer.is_empty() => Err("closed without an answer".into()),
        Ok(Ok(_)) => Ok(answer),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer".into()),
    }
}

fn roots(pem: &[u8]) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    roots
}

fn client_builder() -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier> {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
}

async fn recv(rx: &mut mpsc::Receiver<Inbound>) -> Option<Inbound> {
    tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.ok().flatten()
}

#[tokio::test]
async fn mutual_tls_delivers_with_the_sender_id() {
    let root = &pki().main;
    let (addr, mut inbox, _stop) = receiver(2, &[1, 2], &peer_tls(root, 2)).await;
    let t = transport(1, &[(2, addr)], peer_tls(root, 1));
    for i in 0..100u32 {
        t.send(NodeId(2), Bytes::from(i.to_le_bytes().to_vec()));
    }
    for i in 0..100u32 {
        let got = recv(&mut inbox).await.expect("payload not delivered over TLS");
        assert_eq!(got.from, NodeId(1));
        assert_eq!(got.payload.as_ref(), i.to_le_bytes());
    }
}

#[tokio::test]
async fn a_40_mib_payload_crosses_mutual_tls_whole_and_in_order() {
    let root = &pki().main;
    let (addr, mut inbox, _stop) = receiver(2, &[1, 2], &peer_tls(root, 2)).await;
    let t = transport(1, &[(2, addr)], peer_tls(root, 1));
    let large = super::fragments::pattern(40 << 20, 7);
    let started = std::time::Instant::now();
    t.send(NodeId(2), Bytes::from_static(b"before"));
    t.send(NodeId(2), large.clone());
    t.send(NodeId(2), Bytes::from_static(b"after"));
    let within = Duration::from_secs(60);
    let mut next = async || tokio::time::timeout(within, inbox.recv()).await.unwrap().unwrap();
    assert_eq!(next().await.payload.as_ref(), b"before");
    let got = next().await;
    let elapsed = started.elapsed();
    assert_eq!(got.from, NodeId(1));
    super::fragments::assert_same(&got.payload, &large);
    assert_eq!(next().await.payload.as_ref(), b"after");
    eprintln!(
        "40 MiB in 40 fragments over mutual TLS: {elapsed:?} ({:.0} MiB/s)",
        40.0 / elapsed.as_secs_f64()
    );
}

#[tokio::test]
async fn a_peer_presenting_another_nodes_certificate_is_refused() {
    let root = &pki().main;
    let (addr, mut inbox, _stop) = receiver(1, &[1, 2, 3], &peer_tls(root, 1)).await;
    let node2 = peer_tls(root, 2);
    // Node 2's certificate, valid CA, speaking as node 3: refused, and the reason says why.
    let refused = send_as(addr, &node2, 1, 3).await.unwrap_err();
    assert!(matches!(refused, DialError::Refused { .. }), "{refused}");
    assert!(refused.to_string().contains("node-3.conclave"), "{refused}");
    // The same certificate speaking as itself is accepted: the refusal above is about the id.
    send_as(addr, &node2, 1, 2).await.expect("node 2 with its own certificate is accepted");
    let got = recv(&mut inbox).await.expect("node 2's payload delivered");
    assert_eq!(got.from, NodeId(2));
    // A whole transport running as node 3 with node 2's certificate delivers nothing.
    let impostor = transport(3, &[(1, addr)], node2.clone());
    impostor.send(NodeId(1), Bytes::from_static(b"as node 3"));
    assert!(tokio::time::timeout(Duration::from_millis(800), inbox.recv()).await.is_err());
}

#[tokio::test]
async fn the_dialer_refuses_a_server_answering_with_another_nodes_certificate() {
    let root = &pki().main;
    // Whoever listens at "node 2's" address holds node 3's certificate.
    let (addr, mut inbox, _stop) = receiver(2, &[1, 2, 3], &peer_tls(root, 3)).await;
    let config = tls_config(&peer_tls(root, 1));
    let error = dial(NodeId(1), NodeId(2), &addr.to_string(), &config).await.unwrap_err();
    // The transport warns (once) about exactly such errors.
    assert!(matches!(error, DialError::Tls { .. }), "{error}");
    assert!(error.to_string().contains("certificate") && error.is_misconfiguration(), "{error}");
    eprintln!("dialer refused the impostor server: {error}");
    // Dialled as node 3, the handshake passes — the name is what failed — and the listener
    // itself then refuses a link meant for node 3.
    let error = dial(NodeId(1), NodeId(3), &addr.to_string(), &config).await.unwrap_err();
    assert!(matches!(error, DialError::Refused { .. }), "{error}");
    let t = transport(1, &[(2, addr)], peer_tls(root, 1));
    t.send(NodeId(2), Bytes::from_static(b"to the wrong server"));
    assert!(tokio::time::timeout(Duration::from_millis(800), inbox.recv()).await.is_err());
}

#[tokio::test]
async fn a_peer_without_a_certificate_or_from_another_ca_is_refused() {
    let pki = pki();
    let (addr, mut inbox, _stop) = receiver(1, &[1, 2], &peer_tls(&pki.main, 1)).await;
    let ca = read(pki.main.join("peer-ca.pem"));
    // No client certificate: the handshake fails and the hello is never answered.
    let anonymous = client_builder().with_root_certificates(roots(&ca)).with_no_client_auth();
    let result = raw_hello(addr, anonymous).await;
    eprintln!("a peer without a certificate: {result:?}");
    assert!(result.is_err(), "a peer without a certificate was answered: {result:?}");
    // Node 2's certificate from another CA: refused as well.
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(pki.other.join("node-2/peer.pem")))
            .map(|c| c.unwrap())
            .collect();
    let key =
        rustls_pki_types::PrivateKeyDer::from_pem_slice(&read(pki.other.join("node-2/peer.key")))
            .unwrap();
    let foreign = client_builder()
        .with_root_certificates(roots(&ca))
        .with_client_auth_cert(chain, key)
        .unwrap();
    let result = raw_hello(addr, foreign).await;
    eprintln!("a certificate from another CA: {result:?}");
    assert!(result.is_err(), "a certificate from another CA was accepted: {result:?}");
    assert!(inbox.try_recv().is_err());
    // The member's own configuration, for contrast, is accepted.
    send_as(addr, &peer_tls(&pki.main, 2), 1, 2).await.expect("node 2 is accepted");
}

#[test]
fn unusable_material_is_named() {
    let root = &pki().main;
    let cert = read(root.join("node-1/peer.pem"));
    let key = read(root.join("node-1/peer.key"));
    let ca = read(root.join("peer-ca.pem"));
    let error = PeerTls::new(b"not a pem", &key, &ca).unwrap_err().to_string();
    assert!(error.contains("certificate"), "{error}");
    let error = PeerTls::new(&cert, b"", &ca).unwrap_err().to_string();
    assert!(error.contains("private key"), "{error}");
    let error = PeerTls::new(&cert, &key, b"").unwrap_err().to_string();
    assert!(error.contains("CA"), "{error}");
    let other_key = read(root.join("node-2/peer.key"));
    let error = PeerTls::new(&cert, &other_key, &ca).unwrap_err().to_string();
    assert!(error.contains("do not go together"), "{error}");
}

#[test]
fn a_certificate_names_exactly_its_node() {
    let root = &pki().main;
    let cert = peer_cert(root, 2);
    assert_eq!(certificate_names_node(&cert, NodeId(2)), Ok(()));
    assert!(matches!(
        certificate_names_node(&cert, NodeId(3)),
        Err(PeerIdentityError::WrongNode { claimed: NodeId(3), .. })
    ));
    let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
    assert!(matches!(
        certificate_names_node(&garbage, NodeId(2)),
        Err(PeerIdentityError::Unreadable(_))
    ));
}

#[test]
fn a_wildcard_certificate_speaks_for_no_node() {
    let root = &pki().main;
    let dir = tempfile::tempdir().unwrap();
    let (key, csr, ext, pem) = (
        dir.path().join("w.key"),
        dir.path().join("w.csr"),
        dir.path().join("w.cnf"),
        dir.path().join("w.pem"),
    );
    std::fs::write(&ext, "subjectAltName=DNS:*.conclave\nextendedKeyUsage=serverAuth,clientAuth\n")
        .unwrap();
    let openssl = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new("openssl").args(args).output().expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let s = |text: &'static str| std::ffi::OsStr::new(text);
    openssl(&[
        s("genpkey"),
        s("-algorithm"),
        s("EC"),
        s("-pkeyopt"),
        s("ec_paramgen_curve:P-256"),
        s("-out"),
        key.as_os_str(),
    ]);
    openssl(&[
        s("req"),
        s("-new"),
        s("-key"),
        key.as_os_str(),
        s("-subj"),
        s("/CN=wildcard"),
        s("-out"),
        csr.as_os_str(),
    ]);
    let (ca, ca_key, serial) =
        (root.join("peer-ca.pem"), root.join("peer-ca.key"), dir.path().join("ca.srl"));
    openssl(&[
        s("x509"),
        s("-req"),
        s("-in"),
        csr.as_os_str(),
        s("-CA"),
        ca.as_os_str(),
        s("-CAkey"),
        ca_key.as_os_str(),
        s("-CAserial"),
        serial.as_os_str(),
        s("-CAcreateserial"),
        s("-days"),
        s("30"),
        s("-extfile"),
        ext.as_os_str(),
        s("-out"),
        pem.as_os_str(),
    ]);
    let cert = CertificateDer::from_pem_slice(&read(pem)).unwrap();
    for id in [1, 2, 3] {
        let verdict = certificate_names_node(&cert, NodeId(id));
        eprintln!("wildcard certificate as node {id}: {verdict:?}");
        assert!(verdict.is_err(), "a wildcard certificate spoke for node {id}");
    }
}
