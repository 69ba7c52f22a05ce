//! Configuration validation: every error names the field, its value and what is accepted.

use conclave_raft::{RaftConfig, RaftError};

fn field_of(config: RaftConfig) -> &'static str {
    match config.validate() {
        Err(RaftError::InvalidConfig { field, .. }) => field,
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

#[test]
fn defaults_validate() {
    RaftConfig::default().validate().unwrap();
}

#[test]
fn each_bad_value_names_its_field() {
    let d = RaftConfig::default;
    assert_eq!(field_of(RaftConfig { tick_interval_ms: 0, ..d() }), "tick_interval_ms");
    assert_eq!(field_of(RaftConfig { heartbeat_interval_ms: 5, ..d() }), "heartbeat_interval_ms");
    assert_eq!(
        field_of(RaftConfig { election_timeout_ms_min: 90, ..d() }),
        "election_timeout_ms_min"
    );
    assert_eq!(
        field_of(RaftConfig { election_timeout_ms_max: 149, ..d() }),
        "election_timeout_ms_max"
    );
    assert_eq!(
        field_of(RaftConfig { lease_read: true, election_timeout_ms_min: 30, ..d() }),
        "election_timeout_ms_min"
    );
    assert_eq!(field_of(RaftConfig { max_entries_per_append: 0, ..d() }), "max_entries_per_append");
    assert_eq!(field_of(RaftConfig { max_append_bytes: 0, ..d() }), "max_append_bytes");
    assert_eq!(field_of(RaftConfig { max_inflight_appends: 0, ..d() }), "max_inflight_appends");
}

#[test]
fn message_names_value_and_accepted_range() {
    let err = RaftConfig { election_timeout_ms_max: 100, ..RaftConfig::default() }
        .validate()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid raft config: election_timeout_ms_max = 100; accepted: at least \
         election_timeout_ms_min (150)"
    );
}

#[test]
fn config_deserializes_with_defaults() {
    // Only the knobs a file sets change; the rest keep their defaults.
    let config: RaftConfig = serde_json::from_str(r#"{"pre_vote": false}"#).unwrap();
    assert_eq!(config, RaftConfig { pre_vote: false, ..RaftConfig::default() });
}
