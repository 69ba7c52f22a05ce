//! Errors of constructing a Raft replica. Runtime refusals (not the leader, a change already in
//! progress) are not errors of this crate: they go to the caller as a
//! [`conclave_core::Rejection`] in the next `Ready`.

/// Why a [`crate::Raft`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RaftError {
    /// A configuration field holds a value outside what is accepted.
    #[error("invalid raft config: {field} = {value}; accepted: {accepted}")]
    InvalidConfig { field: &'static str, value: String, accepted: String },
    /// The recovered hard state is not a Raft hard state.
    #[error("recovered hard state does not decode: {0}")]
    HardStateDecode(String),
    /// The recovered log does not fit the recovered snapshot or is not contiguous.
    #[error("recovered log is inconsistent: {0}")]
    RecoveredLog(String),
}
