//! Errors of constructing a Paxos replica. Runtime refusals (not the leader, a full queue, a
//! membership change already in progress) are not errors of this crate: they go to the caller
//! as a [`conclave_core::Rejection`] in the next `Ready`.

/// Why a [`crate::Paxos`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PaxosError {
    /// A configuration field holds a value outside what is accepted.
    #[error("invalid paxos config: {field} = {value}; accepted: {accepted}")]
    InvalidConfig { field: &'static str, value: String, accepted: String },
    /// A node id does not fit in a ballot's low bits.
    #[error("node id {id} does not fit in a ballot; accepted: 0..={max}")]
    NodeIdTooLarge { id: u64, max: u64 },
    /// The initial membership names no voter.
    #[error("membership has no voters")]
    EmptyMembership,
    /// The recovered hard state is not a Paxos hard state.
    #[error("recovered hard state does not decode: {0}")]
    HardStateDecode(String),
    /// The recovered log does not fit the recovered snapshot or is not contiguous.
    #[error("recovered log is inconsistent: {0}")]
    RecoveredLog(String),
}
