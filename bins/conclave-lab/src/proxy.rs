//! The lab's user-space TCP proxy: every peer connection of a lab-started cluster goes through
//! it, so the lab can cut, slow or lose any link. Loopback only.
//!
//! A [`Network`] holds the rules (which directed links are cut, how much each is delayed, how
//! often it loses data) and the listeners. Conclave nodes get one listener per directed link
//! i→j: node i's config names member j at that listener, so every connection through it
//! carries i's traffic to j. etcd members must agree on each other's peer URLs, so there is
//! one listener in front of each member's peer port instead, and the proxy learns who is
//! calling from the `X-Server-From` header that etcd's peer requests carry (plain HTTP/1.1 on
//! loopback); a connection from an unknown caller is only affected when its destination is
//! cut off from everyone.
//!
//! A cut is a black hole, as in a real partition: connections stay open but nothing is
//! forwarded until the link heals, and then what the kernel buffered flows on. Delay holds
//! each chunk for the link's delay (order is kept). Loss cannot drop bytes from a TCP stream
//! without breaking it, so a lost chunk costs what TCP pays for a lost segment: it (and
//! everything behind it) waits one retransmission timeout, [`RETRANSMIT_TIMEOUT`].

use conclave_core::DetRng;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What one lost chunk costs: Linux's minimum TCP retransmission timeout.
pub const RETRANSMIT_TIMEOUT: Duration = Duration::from_millis(200);

const CHUNK_BYTES: usize = 64 * 1024;
const SNIFF_BYTES: usize = 8 * 1024;

/// Delay and loss on one directed link.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkShape {
    pub delay: Duration,
    /// Up to this much more, drawn per chunk.
    pub jitter: Duration,
    /// Probability that a chunk is "lost" and waits a retransmission timeout.
    pub loss: f64,
}

#[derive(Debug, Default)]
struct Rules {
    /// Directed links (from, to) that carry nothing.
    cut: BTreeSet<(usize, usize)>,
    shape: BTreeMap<(usize, usize), LinkShape>,
    closed: bool,
}

/// Counters for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    pub connections: u64,
    pub bytes: u64,
}

/// The proxied peer network of one cluster.
#[derive(Debug)]
pub struct Network {
    nodes: usize,
    rules: Mutex<Rules>,
    changed: watch::Sender<u64>,
    /// etcd member ids (lowercase hex, as in `X-Server-From`) to node indexes.
    senders: Mutex<HashMap<String, usize>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    stats: Mutex<ProxyStats>,
    rng: Mutex<DetRng>,
}

/// Whether a connection may carry data now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gate {
    Open,
    Blocked,
    Closed,
}

impl Network {
    pub fn new(nodes: usize, seed: u64) -> Arc<Self> {
        Arc::new(Self {
            nodes,
            rules: Mutex::new(Rules::default()),
            changed: watch::channel(0).0,
            senders: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            stats: Mutex::new(ProxyStats::default()),
            rng: Mutex::new(DetRng::new(seed)),
        })
    }

    pub fn nodes(&self) -> usize {
        self.nodes
    }

    fn update(&self, change: impl FnOnce(&mut Rules)) {
        change(&mut self.rules.lock().unwrap_or_else(|p| p.into_inner()));
        self.changed.send_modify(|generation| *generation += 1);
    }

    /// Cuts the directed link `from → to`.
    pub fn cut(&self, from: usize, to: usize) {
        self.update(|rules| {
            rules.cut.insert((from, to));
        });
    }

    /// Cuts every link between the two groups, both ways.
    pub fn split(&self, a: &[usize], b: &[usize]) {
        self.update(|rules| {
            for &i in a {
                for &j in b {
                    rules.cut.insert((i, j));
                    rules.cut.insert((j, i));
                }
            }
        });
    }

    /// Shapes every directed link.
    pub fn shape_all(&self, shape: LinkShape) {
        let n = self.nodes;
        self.update(|rules| {
            for i in 0..n {
                for j in (0..n).filter(|&j| j != i) {
                    rules.shape.insert((i, j), shape);
                }
            }
        });
    }

    /// Removes every cut and every shape.
    pub fn heal(&self) {
        self.update(|rules| {
            rules.cut.clear();
            rules.shape.clear();
        });
    }

    /// The cut links, for progress lines and tests.
    pub fn cuts(&self) -> Vec<(usize, usize)> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).cut.iter().copied().collect()
    }

    pub fn stats(&self) -> ProxyStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the proxy which node an etcd member id belongs to.
    pub fn register_sender(&self, member_id_hex: &str, node: usize) {
        self.senders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(member_id_hex.to_ascii_lowercase(), node);
    }

    /// The node a caller is, once known (etcd ids are registered after the cluster starts).
    fn resolve(&self, caller: &Caller) -> Option<usize> {
        match caller {
            Caller::Node(node) => Some(*node),
            Caller::Member(id) => {
                self.senders.lock().unwrap_or_else(|p| p.into_inner()).get(id).copied()
            }
            Caller::Unknown => None,
        }
    }

    fn gate(&self, caller: &Caller, to: usize, both_ways: bool) -> Gate {
        let from = self.resolve(caller);
        let rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        if rules.closed {
            return Gate::Closed;
        }
        let blocked = match from {
            Some(from) => {
                rules.cut.contains(&(from, to)) || (both_ways && rules.cut.contains(&(to, from)))
            }
            None => (0..self.nodes).filter(|&k| k != to).all(|k| rules.cut.contains(&(k, to))),
        };
        if blocked { Gate::Blocked } else { Gate::Open }
    }

    /// How long a chunk read now on `from → to` waits before it is forwarded.
    fn hold(&self, from: Option<usize>, to: Option<usize>) -> Duration {
        let (Some(from), Some(to)) = (from, to) else { return Duration::ZERO };
        let shape = {
            let rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
            rules.shape.get(&(from, to)).copied().unwrap_or_default()
        };
        if shape == LinkShape::default() {
            return Duration::ZERO;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let jitter_us = shape.jitter.as_micros() as u64;
        let mut hold = shape.delay + Duration::from_micros(rng.range_inclusive(0, jitter_us));
        if shape.loss > 0.0 && rng.chance(shape.loss) {
            hold += RETRANSMIT_TIMEOUT;
        }
        hold
    }

    /// Listens on a fresh loopback port and forwards every connection to `upstream`, as the
    /// link `from → to` (`from: None`: learn the caller from etcd's `X-Server-From` header).
    pub async fn listen(
        self: &Arc<Self>,
        from: Option<usize>,
        to: usize,
        upstream: SocketAddr,
    ) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let local = listener.local_addr()?;
        let network = Arc::clone(self);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let serving = Arc::clone(&network);
                let connection = tokio::spawn(async move {
                    serving.serve(stream, from, to, upstream).await;
                });
                let mut tasks = network.tasks.lock().unwrap_or_else(|p| p.into_inner());
                tasks.retain(|t| !t.is_finished());
                tasks.push(connection);
            }
        });
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).push(task);
        Ok(local)
    }

    /// Waits while the gate is blocked; false once it is closed.
    async fn wait_open(&self, caller: &Caller, to: usize, both_ways: bool) -> bool {
        let mut changes = self.changed.subscribe();
        loop {
            match self.gate(caller, to, both_ways) {
                Gate::Open => return true,
                Gate::Closed => return false,
                Gate::Blocked => {
                    if changes.changed().await.is_err() {
                        return false;
                    }
                }
            }
        }
    }

    async fn serve(
        self: Arc<Self>,
        mut inbound: TcpStream,
        from: Option<usize>,
        to: usize,
        upstream: SocketAddr,
    ) {
        let _ = inbound.set_nodelay(true);
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).connections += 1;
        // etcd: learn the caller from its first request's headers.
        let both_ways = from.is_none();
        let mut prefix = Vec::new();
        let caller = match from {
            Some(from) => Caller::Node(from),
            None => match sniff(&mut inbound, &mut prefix).await {
                Some(id) => Caller::Member(id),
                None => Caller::Unknown,
            },
        };
        if !self.wait_open(&caller, to, both_ways).await {
            return;
        }
        let Ok(Ok(mut outbound)) =
            tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(upstream)).await
        else {
            return;
        };
        let _ = outbound.set_nodelay(true);
        if !prefix.is_empty() && outbound.write_all(&prefix).await.is_err() {
            return;
        }
        let (in_read, in_write) = inbound.into_split();
        let (out_read, out_write) = outbound.into_split();
        let forward = Direction { caller: &caller, to, backward: false, both_ways };
        let backward = Direction { caller: &caller, to, backward: true, both_ways };
        // Both directions live in this task, so aborting it ends the connection; each ends
        // when its reader sees the end of the stream, passing the half-close on.
        tokio::join!(
            self.pump(in_read, out_write, forward),
            self.pump(out_read, in_write, backward)
        );
    }

    async fn pump(
        &self,
        mut reader: tokio::net::tcp::OwnedReadHalf,
        mut writer: tokio::net::tcp::OwnedWriteHalf,
        direction: Direction<'_>,
    ) {
        let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(256);
        let write = async move {
            while let Some((due, chunk)) = rx.recv().await {
                // A timer rounds up to the next millisecond: an undelayed link must not wait
                // on one, or every hop through the lab would cost up to a millisecond.
                if due > Instant::now() {
                    tokio::time::sleep_until(due).await;
                }
                if writer.write_all(&chunk).await.is_err() {
                    return;
                }
                self.stats.lock().unwrap_or_else(|p| p.into_inner()).bytes += chunk.len() as u64;
            }
            let _ = writer.shutdown().await;
        };
        let read = async move {
            let mut last_due = Instant::now();
            let mut buffer = vec![0u8; CHUNK_BYTES];
            loop {
                let n = match reader.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                // A chunk read while the link is cut is held until it heals.
                if !self.wait_open(direction.caller, direction.to, direction.both_ways).await {
                    break;
                }
                let from = self.resolve(direction.caller);
                let link = if direction.backward {
                    (Some(direction.to), from)
                } else {
                    (from, Some(direction.to))
                };
                let due = (Instant::now() + self.hold(link.0, link.1)).max(last_due);
                last_due = due;
                if tx.send((due, buffer[..n].to_vec())).await.is_err() {
                    break;
                }
            }
        };
        tokio::join!(read, write);
    }

    /// Stops every listener and connection.
    pub fn shutdown(&self) {
        self.update(|rules| rules.closed = true);
        for task in self.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for task in self.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
    }
}

/// Who opened a proxied connection.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Caller {
    /// Known from the listener (Conclave: one listener per directed link).
    Node(usize),
    /// An etcd member id from `X-Server-From`, resolved when rules are checked.
    Member(String),
    Unknown,
}

/// One direction of a connection: forward carries the caller's bytes to `to`, backward the
/// answers; both wait on the connection's gate.
#[derive(Clone, Copy, Debug)]
struct Direction<'a> {
    caller: &'a Caller,
    to: usize,
    backward: bool,
    both_ways: bool,
}

/// Reads the start of an HTTP request into `prefix` (up to the end of its headers, a size
/// limit or one second) and returns the `X-Server-From` header's value, lowercased.
async fn sniff(stream: &mut TcpStream, prefix: &mut Vec<u8>) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut buffer = [0u8; 4096];
    while prefix.len() < SNIFF_BYTES && !prefix.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => prefix.extend_from_slice(&buffer[..n]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(prefix);
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("x-server-from").then(|| value.trim().to_ascii_lowercase())
    })
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
