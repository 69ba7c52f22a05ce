//! Errors of constructing a Totem member. Runtime refusals (not in the primary component) are
//! not errors of this crate: they reach the caller as a [`conclave_core::Rejection`] in the next
//! `Ready`.

/// Why a [`crate::Totem`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TotemError {
    /// A configuration field holds a value outside what is accepted.
    #[error("invalid totem config: {field} = {value}; accepted: {accepted}")]
    InvalidConfig { field: &'static str, value: String, accepted: String },
    /// The node is not one of the configured members, so it could never count toward a
    /// primary component.
    #[error("node {0} is not one of the configured members")]
    NotConfigured(conclave_core::NodeId),
    /// The recovered hard state is not a Totem hard state.
    #[error("recovered hard state does not decode: {0}")]
    HardStateDecode(String),
    /// The recovered log does not fit the recovered snapshot or is not contiguous.
    #[error("recovered log is inconsistent: {0}")]
    RecoveredLog(String),
}
