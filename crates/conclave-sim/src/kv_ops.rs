//! Client operations as `conclave-kv` sees them: puts and compare-and-swaps become log
//! commands, reads become ranges served once the protocol allows, and outputs become replies.

use crate::clients::{OpKind, Reply};
use bytes::Bytes;
use conclave_kv::{
    Command, Compare, CompareResult, CompareTarget, KvStore, Output, PutRequest, RangeRequest,
    RequestOp, TxnRequest,
};

/// The log command for a write, or `None` for a read (reads do not go through the log).
pub(crate) fn command(key: &str, kind: &OpKind) -> Option<Command> {
    match kind {
        OpKind::Put { value } => {
            Some(Command::Put(PutRequest::new(key.to_string(), value.clone())))
        }
        OpKind::Get => None,
        OpKind::Cas { expected, new } => {
            // A missing key has version 0; comparing a value on a missing key always fails, so
            // "expect absent" must compare the version instead.
            let compare = match expected {
                Some(value) => Compare::new(
                    key.to_string(),
                    CompareResult::Equal,
                    CompareTarget::Value(Bytes::from(value.clone())),
                ),
                None => {
                    Compare::new(key.to_string(), CompareResult::Equal, CompareTarget::Version(0))
                }
            };
            Some(Command::Txn(TxnRequest {
                compare: vec![compare],
                success: vec![RequestOp::Put(PutRequest::new(key.to_string(), new.clone()))],
                failure: Vec::new(),
            }))
        }
    }
}

/// The client's reply for an applied write's output bytes.
pub(crate) fn reply_for_output(kind: &OpKind, output: &[u8]) -> Reply {
    match (kind, Output::decode(output)) {
        (OpKind::Put { .. }, Ok(Output::Put(_))) => Reply::Put,
        (OpKind::Cas { .. }, Ok(Output::Txn(txn))) => Reply::Cas(txn.succeeded),
        (_, Ok(Output::Error(error))) => Reply::Failed(format!("kv refused the command: {error}")),
        (_, Ok(other)) => Reply::Failed(format!("unexpected kv output {other:?}")),
        (_, Err(error)) => Reply::Failed(format!("undecodable kv output: {error}")),
    }
}

/// Reads one key's current value.
pub(crate) fn read(kv: &KvStore, key: &str) -> Reply {
    match kv.range(&RangeRequest::key(key.to_string())) {
        Ok(range) => Reply::Get(range.kvs.first().map(|kv| value_string(&kv.value))),
        Err(error) => Reply::Failed(format!("kv refused the read: {error}")),
    }
}

fn value_string(value: &Bytes) -> String {
    String::from_utf8_lossy(value).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_core::StateMachine;

    fn apply(kv: &mut KvStore, index: u64, key: &str, kind: &OpKind) -> Reply {
        let command = command(key, kind).expect("a write");
        let output = kv.apply(index, Some(&command.encode()));
        reply_for_output(kind, &output)
    }

    #[test]
    fn put_cas_and_read_round_trip_through_the_kv_store() {
        let mut kv = KvStore::new();
        let create = OpKind::Cas { expected: None, new: "a".into() };
        assert_eq!(apply(&mut kv, 1, "k", &create), Reply::Cas(true));
        assert_eq!(apply(&mut kv, 2, "k", &create), Reply::Cas(false));
        assert_eq!(read(&kv, "k"), Reply::Get(Some("a".into())));
        let swap = OpKind::Cas { expected: Some("a".into()), new: "b".into() };
        assert_eq!(apply(&mut kv, 3, "k", &swap), Reply::Cas(true));
        assert_eq!(apply(&mut kv, 4, "k", &swap), Reply::Cas(false));
        assert_eq!(apply(&mut kv, 5, "k", &OpKind::Put { value: "c".into() }), Reply::Put);
        assert_eq!(read(&kv, "k"), Reply::Get(Some("c".into())));
        assert_eq!(read(&kv, "other"), Reply::Get(None));
        let absent = OpKind::Cas { expected: Some("x".into()), new: "y".into() };
        assert_eq!(apply(&mut kv, 6, "other", &absent), Reply::Cas(false));
    }
}
