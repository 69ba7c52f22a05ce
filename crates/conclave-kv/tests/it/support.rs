//! Small helpers that keep the tests about semantics rather than plumbing.

use bytes::Bytes;
use conclave_kv::{
    Command, DeleteRangeRequest, DeleteRangeResponse, KeyValue, KvError, KvStore, Output,
    PutRequest, PutResponse, RangeRequest, TxnRequest, TxnResponse,
};

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub fn put(store: &mut KvStore, key: &str, value: &str) -> PutResponse {
    put_req(store, PutRequest::new(b(key), b(value))).expect("put succeeds")
}

pub fn put_req(store: &mut KvStore, req: PutRequest) -> Result<PutResponse, KvError> {
    match store.apply_command(&Command::Put(req)) {
        Output::Put(resp) => Ok(resp),
        Output::Error(e) => Err(e),
        other => panic!("unexpected output {other:?}"),
    }
}

pub fn delete(store: &mut KvStore, req: DeleteRangeRequest) -> DeleteRangeResponse {
    match store.apply_command(&Command::DeleteRange(req)) {
        Output::DeleteRange(resp) => resp,
        other => panic!("unexpected output {other:?}"),
    }
}

pub fn txn(store: &mut KvStore, req: TxnRequest) -> Result<TxnResponse, KvError> {
    match store.apply_command(&Command::Txn(req)) {
        Output::Txn(resp) => Ok(resp),
        Output::Error(e) => Err(e),
        other => panic!("unexpected output {other:?}"),
    }
}

/// The current value of one key, if it exists.
pub fn get(store: &KvStore, key: &str) -> Option<KeyValue> {
    get_at(store, key, 0)
}

pub fn get_at(store: &KvStore, key: &str, revision: i64) -> Option<KeyValue> {
    let resp =
        store.range(&RangeRequest::key(b(key)).with_revision(revision)).expect("range succeeds");
    assert!(resp.kvs.len() <= 1);
    resp.kvs.into_iter().next()
}

/// The keys a response holds, as strings.
pub fn keys(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect()
}
