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

/// Why `endpoints` did not converge, one line per endpoint: how many keys it serves and which
/// keys (the first few) differ from the state most endpoints serve; or that it did not answer.
pub async fn describe_divergence(endpoints: &[String]) -> Vec<String> {
    let mut states = Vec::with_capacity(endpoints.len());
    for endpoint in endpoints {
        states.push(local_state(endpoint).await);
    }
    divergence(endpoints, &states)
}

fn divergence(endpoints: &[String], states: &[Option<State>]) -> Vec<String> {
    const LISTED: usize = 5;
    let answered: Vec<&State> = states.iter().flatten().collect();
    let majority = answered
        .iter()
        .max_by_key(|s| answered.iter().filter(|other| **other == **s).count())
        .copied();
    endpoints
        .iter()
        .zip(states)
        .map(|(endpoint, state)| {
            let (Some(state), Some(majority)) = (state, majority) else {
                return format!("{endpoint}: did not answer a local read within 1.5 s");
            };
            let differing: Vec<String> = majority
                .keys()
                .chain(state.keys().filter(|k| !majority.contains_key(*k)))
                .filter(|key| state.get(*key) != majority.get(*key))
                .map(|key| {
                    let show = |s: &State| s.get(key).cloned().unwrap_or_else(|| "-".into());
                    format!("{key}={} (most: {})", show(state), show(majority))
                })
                .collect();
            if differing.is_empty() {
                return format!("{endpoint}: {} keys, as most replicas", state.len());
            }
            let listed = differing.iter().take(LISTED).cloned().collect::<Vec<_>>().join(", ");
            format!("{endpoint}: {} keys, {} differ: {listed}", state.len(), differing.len())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pairs: &[(&str, &str)]) -> State {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn divergence_names_the_replica_and_the_keys_that_differ() {
        let endpoints: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let good = state(&[("k1", "t1"), ("k2", "t2")]);
        let behind = state(&[("k1", "t0")]);
        let lines = divergence(&endpoints, &[Some(good.clone()), Some(behind), Some(good)]);
        assert_eq!(lines[0], "a: 2 keys, as most replicas");
        assert_eq!(lines[1], "b: 1 keys, 2 differ: k1=t0 (most: t1), k2=- (most: t2)");
        let lines = divergence(&endpoints[..1], &[None]);
        assert_eq!(lines[0], "a: did not answer a local read within 1.5 s");
    }
}
