//! One workload client's connection to a target, through the etcd v3 API.
//!
//! The same code talks to every target, Conclave or etcd: reads are `Range`, writes `Put`, and
//! a compare-and-swap is a `Txn` that compares the key's value (or, for "absent", its version
//! with 0) and puts the new value on success. A session holds a lazily connected channel per
//! endpoint, starts on one endpoint and moves to the next whenever a request fails, much as
//! etcd's own client balancer does.
//!
//! Failures are sorted into the ones known not to have taken effect (the request was refused
//! before it reached consensus) and the ones that may have: a timeout or a broken connection
//! leaves a write's fate unknown, and the history must say so.

use crate::workload::{OpKind, PlannedOp, decode_tag, encode_value};
use conclave_etcd::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use conclave_etcd::pb::etcdserverpb::kv_client::KvClient;
use conclave_etcd::pb::etcdserverpb::request_op::Request as OpRequest;
use conclave_etcd::pb::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use conclave_sim::linearizability::Output;
use std::collections::HashMap;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// Why a request failed, as counted in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// No answer within the operation timeout.
    Timeout,
    /// The server said it knows no leader.
    NoLeader,
    /// Leadership moved while the request was in flight.
    LeaderChanged,
    /// The connection could not be made (the request was never sent).
    Connect,
    /// The connection broke, or the server was otherwise unavailable.
    Unavailable,
    /// The target does not offer the operation (e.g. atomic compare-and-swap on gossip).
    Unsupported,
    /// The server refused the request before proposing it (limits, bad arguments).
    Rejected,
    Other,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::NoLeader => "no-leader",
            Self::LeaderChanged => "leader-changed",
            Self::Connect => "connect",
            Self::Unavailable => "unavailable",
            Self::Unsupported => "unsupported",
            Self::Rejected => "rejected",
            Self::Other => "other",
        }
    }

    /// Whether a request that failed so certainly did not take effect.
    pub fn is_definite(self) -> bool {
        matches!(self, Self::Connect | Self::Unsupported | Self::Rejected)
    }

    fn of_status(status: &Status) -> Self {
        let message = status.message().to_ascii_lowercase();
        let source = format!("{status:?}").to_ascii_lowercase();
        match status.code() {
            Code::DeadlineExceeded | Code::Cancelled => Self::Timeout,
            Code::FailedPrecondition | Code::Unimplemented => Self::Unsupported,
            Code::InvalidArgument | Code::ResourceExhausted | Code::OutOfRange => Self::Rejected,
            Code::Unavailable if message.contains("no leader") => Self::NoLeader,
            Code::Unavailable if message.contains("leader changed") => Self::LeaderChanged,
            Code::Unavailable if message.contains("timed out") => Self::Timeout,
            Code::Unavailable
                if source.contains("tcp connect error")
                    || source.contains("connection refused")
                    || source.contains("error trying to connect") =>
            {
                Self::Connect
            }
            Code::Unavailable | Code::Unknown => Self::Unavailable,
            _ => Self::Other,
        }
    }
}

/// How reads are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// etcd's default: linearizable.
    Linearizable,
    /// `serializable: true`, answered from the local replica (what eventual targets offer).
    Serializable,
    /// The planted fault: every read goes to this endpoint with `serializable: true`, yet is
    /// recorded like any other read, as if it were linearizable.
    PlantedStaleAt(usize),
}

/// What a request came back with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Done(Output),
    Failed { kind: ErrorKind, message: String },
}

/// One client's view of a target.
#[derive(Debug)]
pub struct KvSession {
    endpoints: Vec<String>,
    channels: Vec<Option<KvClient<Channel>>>,
    current: usize,
    timeout: Duration,
    value_bytes: usize,
    /// The last value (tag) this client knows per key, which its compare-and-swaps expect.
    known: HashMap<String, Option<String>>,
}

impl KvSession {
    pub fn new(
        endpoints: Vec<String>,
        first: usize,
        timeout: Duration,
        value_bytes: usize,
    ) -> Self {
        let n = endpoints.len().max(1);
        Self {
            channels: endpoints.iter().map(|_| None).collect(),
            endpoints,
            current: first % n,
            timeout,
            value_bytes,
            known: HashMap::new(),
        }
    }

    /// The endpoint index the next request goes to.
    pub fn current(&self) -> usize {
        self.current
    }

    fn channel(&mut self, index: usize) -> Result<KvClient<Channel>, Answer> {
        if self.channels[index].is_none() {
            let endpoint = Endpoint::from_shared(format!("http://{}", self.endpoints[index]))
                .map_err(|e| Answer::Failed { kind: ErrorKind::Other, message: e.to_string() })?
                .connect_timeout(self.timeout.min(Duration::from_millis(500)))
                .tcp_nodelay(true);
            self.channels[index] = Some(KvClient::new(endpoint.connect_lazy()));
        }
        Ok(self.channels[index].clone().expect("channel was just created"))
    }

    /// A session on the same channels and endpoint, knowing no values (for one open-loop
    /// request; see [`KvSession::absorb`]).
    pub fn fork(&self) -> Self {
        Self {
            endpoints: self.endpoints.clone(),
            channels: self.channels.clone(),
            current: self.current,
            timeout: self.timeout,
            value_bytes: self.value_bytes,
            known: HashMap::new(),
        }
    }

    /// Takes in what a forked session learned from one request.
    pub fn absorb(&mut self, fork: &KvSession, op: &PlannedOp, answer: &Answer) {
        for (i, channel) in fork.channels.iter().enumerate() {
            if self.channels[i].is_none() {
                self.channels[i] = channel.clone();
            }
        }
        self.current = fork.current;
        match answer {
            Answer::Done(output) => self.learn(op, output),
            Answer::Failed { .. } if op.kind.may_write() => {
                self.known.remove(&op.key);
            }
            Answer::Failed { .. } => {}
        }
    }

    /// The compare-and-swap's expected value for `key`, as this client last knew it.
    pub fn expected(&self, key: &str) -> Option<String> {
        self.known.get(key).cloned().flatten()
    }

    /// Sends `op` and waits for the answer or the timeout. `expected` is the compare-and-swap's
    /// expected tag (see [`KvSession::expected`]).
    pub async fn execute(
        &mut self,
        op: &PlannedOp,
        expected: Option<&str>,
        reads: ReadMode,
    ) -> (usize, Answer) {
        let index = match (op.kind, reads) {
            (OpKind::Read, ReadMode::PlantedStaleAt(node)) => node % self.endpoints.len(),
            _ => self.current,
        };
        let answer = match self.channel(index) {
            Ok(client) => {
                let request = self.send(client, op, expected, reads);
                match tokio::time::timeout(self.timeout, request).await {
                    Ok(Ok(output)) => Answer::Done(output),
                    Ok(Err(status)) => Answer::Failed {
                        kind: ErrorKind::of_status(&status),
                        message: status.message().to_string(),
                    },
                    Err(_) => Answer::Failed {
                        kind: ErrorKind::Timeout,
                        message: "client timeout".into(),
                    },
                }
            }
            Err(answer) => answer,
        };
        match &answer {
            Answer::Done(output) => self.learn(op, output),
            Answer::Failed { kind, .. } => {
                if *kind != ErrorKind::Unsupported && *kind != ErrorKind::Rejected {
                    self.current = (index + 1) % self.endpoints.len();
                }
                if op.kind.may_write() {
                    // The write may or may not have happened: forget what we knew.
                    self.known.remove(&op.key);
                }
            }
        }
        (index, answer)
    }

    fn learn(&mut self, op: &PlannedOp, output: &Output) {
        match output {
            Output::Get { value } => {
                self.known.insert(op.key.clone(), value.clone());
            }
            Output::Put | Output::Cas { succeeded: true } => {
                self.known.insert(op.key.clone(), op.tag.clone());
            }
            Output::Cas { succeeded: false } => {
                self.known.remove(&op.key);
            }
            Output::Delete => {
                self.known.insert(op.key.clone(), None);
            }
        }
    }

    async fn send(
        &self,
        mut client: KvClient<Channel>,
        op: &PlannedOp,
        expected: Option<&str>,
        reads: ReadMode,
    ) -> Result<Output, Status> {
        let key = op.key.as_bytes().to_vec();
        match op.kind {
            OpKind::Read => {
                let serializable = reads != ReadMode::Linearizable;
                let request = RangeRequest { key: key.into(), serializable, ..Default::default() };
                let response = client.range(request).await?.into_inner();
                let value = response.kvs.first().map(|kv| decode_tag(&kv.value));
                Ok(Output::Get { value })
            }
            OpKind::Write => {
                let value = encode_value(op.tag.as_deref().unwrap_or_default(), self.value_bytes);
                let request =
                    PutRequest { key: key.into(), value: value.into(), ..Default::default() };
                client.put(request).await?;
                Ok(Output::Put)
            }
            OpKind::Cas => {
                let compare = match expected {
                    Some(tag) => Compare {
                        result: CompareResult::Equal as i32,
                        target: CompareTarget::Value as i32,
                        key: key.clone().into(),
                        target_union: Some(TargetUnion::Value(
                            encode_value(tag, self.value_bytes).into(),
                        )),
                        ..Default::default()
                    },
                    None => Compare {
                        result: CompareResult::Equal as i32,
                        target: CompareTarget::Version as i32,
                        key: key.clone().into(),
                        target_union: Some(TargetUnion::Version(0)),
                        ..Default::default()
                    },
                };
                let value = encode_value(op.tag.as_deref().unwrap_or_default(), self.value_bytes);
                let put = RequestOp {
                    request: Some(OpRequest::RequestPut(PutRequest {
                        key: key.into(),
                        value: value.into(),
                        ..Default::default()
                    })),
                };
                let request =
                    TxnRequest { compare: vec![compare], success: vec![put], failure: vec![] };
                let response = client.txn(request).await?.into_inner();
                Ok(Output::Cas { succeeded: response.succeeded })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        let kind = |s: Status| ErrorKind::of_status(&s);
        assert_eq!(kind(Status::unavailable("etcdserver: no leader")), ErrorKind::NoLeader);
        assert_eq!(
            kind(Status::unavailable("etcdserver: leader changed")),
            ErrorKind::LeaderChanged
        );
        assert_eq!(kind(Status::deadline_exceeded("x")), ErrorKind::Timeout);
        assert_eq!(kind(Status::failed_precondition("gossip offers no")), ErrorKind::Unsupported);
        assert!(!ErrorKind::Timeout.is_definite());
        assert!(!ErrorKind::LeaderChanged.is_definite());
        assert!(ErrorKind::Unsupported.is_definite());
    }
}
