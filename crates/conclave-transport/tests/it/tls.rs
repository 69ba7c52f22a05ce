//! Mutual TLS between members on loopback, with certificates from `scripts/make-test-ca.sh`:
//! delivery, and refusal of a peer that holds a valid certificate for another node, of a server
//! that answers with another node's certificate, of a peer without a certificate and of one
//! from another CA.

use bytes::Bytes;
use conclave_core::NodeId;
use conclave_node::{Inbound, Transport};
use conclave_transport::pb::peer_client::PeerClient;
use conclave_transport::pb::{Batch, Ping};
use conclave_transport::{
    Faults, GrpcTransport, PeerIdentityError, PeerService, PeerTls, TransportConfig,
    certificate_names_node,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

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
        read(node.join("peer.pem")),
        read(node.join("peer.key")),
        read(root.join("peer-ca.pem")),
    )
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
    let service = PeerService::new(NodeId(me), members, tx)
        .with_shutdown(stopping)
        .require_node_certificates("test")
        .into_server(&TransportConfig::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .tls_config(tls.server_config())
        .unwrap()
        .add_service(service)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            let _ = stopped.await;
            let _ = stopping_tx.send(true);
        });
    tokio::spawn(server);
    (addr, rx, stop)
}

fn transport(me: u64, peers: &[(u64, SocketAddr)], tls: PeerTls) -> GrpcTransport {
    let peers: BTreeMap<NodeId, String> =
        peers.iter().map(|(id, a)| (NodeId(*id), a.to_string())).collect();
    let config = TransportConfig {
        reconnect_backoff_ms_min: 10,
        reconnect_backoff_ms_max: 50,
        tls: Some(tls),
        ..Default::default()
    };
    GrpcTransport::start(NodeId(me), &peers, &config, Faults::default(), "test")
}

/// An error with its sources, as the transport logs it.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(&format!(": {e}"));
        source = e.source();
    }
    text
}

/// A raw peer client over `tls` to `addr`; the connection error, if any, as a string.
async fn client(
    addr: SocketAddr,
    tls: ClientTlsConfig,
) -> Result<PeerClient<tonic::transport::Channel>, String> {
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .tls_config(tls)
        .map_err(|e| format!("{e:?}"))?
        .connect()
        .await
        .map_err(|e| chain(&e))?;
    Ok(PeerClient::new(channel))
}

/// Sends one batch claiming `from` over a client that dials as node `cert_of` would.
async fn send_as(
    addr: SocketAddr,
    cert_of: &PeerTls,
    target: u64,
    from: u64,
) -> Result<(), tonic::Status> {
    let mut client = client(addr, cert_of.client_config(NodeId(target)))
        .await
        .map_err(tonic::Status::unavailable)?;
    let batch = Batch { from, to: target, payloads: vec![Bytes::from_static(b"hello")] };
    client.stream(tokio_stream::iter(vec![batch])).await.map(|_| ())
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
async fn a_peer_presenting_another_nodes_certificate_is_refused() {
    let root = &pki().main;
    let (addr, mut inbox, _stop) = receiver(1, &[1, 2, 3], &peer_tls(root, 1)).await;
    let node2 = peer_tls(root, 2);
    // Node 2's certificate, valid CA, speaking as node 3: refused, and the reason says why.
    let refused = send_as(addr, &node2, 1, 3).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("node-3.conclave"), "{refused:?}");
    // The same certificate speaking as itself is accepted: the refusal above is about the id.
    send_as(addr, &node2, 1, 2).await.expect("node 2 with its own certificate is accepted");
    let got = recv(&mut inbox).await.expect("node 2's batch delivered");
    assert_eq!(got.from, NodeId(2));
    // A whole transport running as node 3 with node 2's certificate delivers nothing.
    let impostor = transport(3, &[(1, addr)], node2.clone());
    impostor.send(NodeId(1), Bytes::from_static(b"as node 3"));
    assert!(tokio::time::timeout(Duration::from_millis(800), inbox.recv()).await.is_err());
    // Pings are checked too.
    let mut raw = client(addr, node2.client_config(NodeId(1))).await.unwrap();
    let ping = raw.round_trip(Ping { from: 3 }).await.unwrap_err();
    assert_eq!(ping.code(), tonic::Code::PermissionDenied);
    raw.round_trip(Ping { from: 2 }).await.expect("a ping as itself is answered");
}

#[tokio::test]
async fn the_dialer_refuses_a_server_answering_with_another_nodes_certificate() {
    let root = &pki().main;
    // Whoever listens at "node 2's" address holds node 3's certificate.
    let (addr, mut inbox, _stop) = receiver(2, &[1, 2, 3], &peer_tls(root, 3)).await;
    let error = client(addr, peer_tls(root, 1).client_config(NodeId(2))).await.unwrap_err();
    // The transport warns (once) about exactly such errors: its test is "certificate".
    assert!(error.contains("certificate"), "{error}");
    eprintln!("dialer refused the impostor server: {error}");
    // Dialled as node 3, the same server is accepted: the name is what failed.
    client(addr, peer_tls(root, 1).client_config(NodeId(3))).await.expect("named correctly");
    let t = transport(1, &[(2, addr)], peer_tls(root, 1));
    t.send(NodeId(2), Bytes::from_static(b"to the wrong server"));
    assert!(tokio::time::timeout(Duration::from_millis(800), inbox.recv()).await.is_err());
}

#[tokio::test]
async fn a_peer_without_a_certificate_or_from_another_ca_is_refused() {
    let pki = pki();
    let (addr, _inbox, _stop) = receiver(1, &[1, 2], &peer_tls(&pki.main, 1)).await;
    let ca = Certificate::from_pem(read(pki.main.join("peer-ca.pem")));
    // No client certificate: the handshake (or the first call after it) fails.
    let anonymous =
        ClientTlsConfig::new().ca_certificate(ca.clone()).domain_name("node-1.conclave");
    let result = match client(addr, anonymous).await {
        Ok(mut c) => c.round_trip(Ping { from: 2 }).await.map(|_| ()).map_err(|s| format!("{s:?}")),
        Err(e) => Err(e),
    };
    assert!(result.is_err(), "a peer without a certificate was answered");
    // Node 2's certificate from another CA: refused as well.
    let foreign = ClientTlsConfig::new()
        .ca_certificate(ca)
        .identity(tonic::transport::Identity::from_pem(
            read(pki.other.join("node-2/peer.pem")),
            read(pki.other.join("node-2/peer.key")),
        ))
        .domain_name("node-1.conclave");
    let result = match client(addr, foreign).await {
        Ok(mut c) => c.round_trip(Ping { from: 2 }).await.map(|_| ()).map_err(|s| format!("{s:?}")),
        Err(e) => Err(e),
    };
    assert!(result.is_err(), "a certificate from another CA was accepted");
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
