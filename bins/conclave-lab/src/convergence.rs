//! Convergence after a run: poll every node with serializable range reads of the workload's
//! keys until all of them serve the same state.
//!
//! For a linearizable target this is how long the last replica takes to catch up (a restarted
//! node replaying, a partitioned one receiving what it missed); for an eventual one it is the
//! anti-entropy's convergence time, the figure that matters most.

use crate::workload::{KEY_PREFIX, decode_tag};
use conclave_etcd::pb::etcdserverpb::RangeRequest;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// Key → tag of the value, as one node serves it.
pub type State = BTreeMap<String, String>;

/// The state `endpoint` serves locally, within a second.
pub async fn local_state(endpoint: &str) -> Option<State> {
    let read = async {
        let mut client =
            crate::client::connect_with_timeout(endpoint, Duration::from_secs(1)).await.ok()?;
        let mut end = KEY_PREFIX.as_bytes().to_vec();
        *end.last_mut().expect("the prefix is not empty") += 1;
        let response = client
            .range(RangeRequest {
                key: KEY_PREFIX.as_bytes().to_vec().into(),
                range_end: end.into(),
                serializable: true,
                ..Default::default()
            })
            .await
            .ok()?
            .into_inner();
        Some(
            response
                .kvs
                .iter()
                .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), decode_tag(&kv.value)))
                .collect(),
        )
    };
    tokio::time::timeout(Duration::from_millis(1500), read).await.ok().flatten()
}

/// Polls until every endpoint serves the same state, or `limit` passes. Returns the time it
/// took (from `since`) and the common state.
pub async fn wait_converged(
    endpoints: &[String],
    since: Instant,
    limit: Duration,
) -> Option<(Duration, State)> {
    let deadline = Instant::now() + limit;
    loop {
        let mut states = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            states.push(local_state(endpoint).await);
        }
        if let Some(Some(first)) = states.first()
            && states.iter().all(|s| s.as_ref() == Some(first))
        {
            return Some((since.elapsed(), first.clone()));
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
