//! Scraping nodes' Prometheus `/metrics` for the per-operation costs in the report.
//!
//! Counters reset when a node restarts (the lab kills and restarts nodes on purpose), so
//! totals are not "after minus before": a [`CounterTotals`] is fed a scrape of every node each
//! second and adds up increases the way Prometheus's `increase()` does, treating a drop as a
//! reset. What a killed node counted after its last scrape is lost, at most a second's worth.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Which series hold the three costs on a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CostSeries {
    /// Peer messages sent (`None`: the target does not count them).
    pub messages: Option<&'static str>,
    pub bytes: Option<&'static str>,
    pub fsyncs: Option<&'static str>,
}

/// Conclave's names (conclave-core's metric vocabulary).
pub const CONCLAVE: CostSeries = CostSeries {
    messages: Some(conclave_core::metrics::PEER_MESSAGES_SENT_TOTAL),
    bytes: Some(conclave_core::metrics::PEER_BYTES_SENT_TOTAL),
    fsyncs: Some(conclave_core::metrics::WAL_FSYNCS_TOTAL),
};

/// etcd 3.4's: it counts peer bytes and WAL fsyncs (a histogram's `_count`), not messages.
pub const ETCD: CostSeries = CostSeries {
    messages: None,
    bytes: Some("etcd_network_peer_sent_bytes_total"),
    fsyncs: Some("etcd_disk_wal_fsync_duration_seconds_count"),
};

/// Values of the three costs on one node at one scrape.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Costs {
    pub messages: f64,
    pub bytes: f64,
    pub fsyncs: f64,
}

/// The sum of every sample of metric `name` (all label sets) in Prometheus text format.
pub fn sum_metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            // The name must end here: `foo_total` is not `foo_total_bucket`.
            let rest = match rest.chars().next()? {
                '{' => &rest[rest.find('}')? + 1..],
                ' ' => rest,
                _ => return None,
            };
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
        .filter(|v| v.is_finite())
        .sum()
}

pub fn costs(text: &str, series: CostSeries) -> Costs {
    let get = |name: Option<&str>| name.map(|n| sum_metric(text, n)).unwrap_or(0.0);
    Costs { messages: get(series.messages), bytes: get(series.bytes), fsyncs: get(series.fsyncs) }
}

/// `GET http://addr/path` over HTTP/1.1, with a deadline; the body on status 200.
pub async fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<String> {
    let fetch = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(timeout, fetch).await??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("");
    anyhow::ensure!(status == "200", "GET {path} from {addr} answered {status}");
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    Ok(if chunked { dechunk(body) } else { body.to_string() })
}

/// Undoes HTTP/1.1 chunked transfer encoding (etcd's Go server uses it).
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// Adds up counter increases across scrapes, surviving restarts.
#[derive(Clone, Debug, Default)]
pub struct CounterTotals {
    last: Vec<Option<Costs>>,
    pub total: Costs,
}

impl CounterTotals {
    pub fn new(nodes: usize) -> Self {
        Self { last: vec![None; nodes], total: Costs::default() }
    }

    /// Takes in one node's current values.
    pub fn observe(&mut self, node: usize, now: Costs) {
        if let Some(last) = self.last[node] {
            let increase = |now: f64, last: f64| if now >= last { now - last } else { now };
            self.total.messages += increase(now.messages, last.messages);
            self.total.bytes += increase(now.bytes, last.bytes);
            self.total.fsyncs += increase(now.fsyncs, last.fsyncs);
        }
        self.last[node] = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_series_of_a_name() {
        let text = "# HELP x\nconclave_peer_bytes_sent_total{peer=\"2\"} 10\nconclave_peer_bytes_sent_total{peer=\"3\"} 5\nconclave_peer_bytes_sent_total_other 99\netcd_x_count 4\n";
        assert_eq!(sum_metric(text, "conclave_peer_bytes_sent_total"), 15.0);
        assert_eq!(sum_metric(text, "etcd_x_count"), 4.0);
        assert_eq!(sum_metric(text, "missing"), 0.0);
    }

    #[test]
    fn totals_survive_a_restart() {
        let mut totals = CounterTotals::new(1);
        let c = |v: f64| Costs { messages: v, bytes: v, fsyncs: v };
        totals.observe(0, c(10.0));
        totals.observe(0, c(25.0));
        totals.observe(0, c(4.0)); // restarted: counted from zero
        totals.observe(0, c(6.0));
        assert_eq!(totals.total.messages, 15.0 + 4.0 + 2.0);
    }

    #[test]
    fn dechunks() {
        assert_eq!(dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "hello world");
    }
}
