//! What the checker says when a key's history has no linearization.

use super::history::Operation;
use std::fmt;

/// Why one key's history is not linearizable, cut down to the operations that matter: the
/// longest prefix the search could linearize ends in `value_after_prefix`, and after it the
/// `stuck` operation (one whose answer had already arrived) fits no order of what was still
/// concurrent with it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyViolation {
    pub key: String,
    /// How many operations the longest linearizable prefix holds.
    pub linearized_ops: usize,
    /// The register's value after that prefix.
    pub value_after_prefix: String,
    /// The last few operations of the prefix, in linearization order.
    pub prefix_tail: Vec<Operation>,
    /// The completed operation that could not be linearized next.
    pub stuck: Option<Operation>,
    /// Operations not in the prefix that were invoked before `stuck` completed.
    pub concurrent: Vec<Operation>,
    /// How many more such operations were left out of `concurrent`.
    pub concurrent_omitted: usize,
}

impl fmt::Display for KeyViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "key {:?} is not linearizable: after a linearizable prefix of {} ops the value is {}",
            self.key, self.linearized_ops, self.value_after_prefix
        )?;
        for op in &self.prefix_tail {
            writeln!(f, "  prefix ends with: {op}")?;
        }
        match &self.stuck {
            Some(op) => writeln!(f, "  cannot linearize: {op}")?,
            None => writeln!(f, "  no operation can be linearized first")?,
        }
        for op in &self.concurrent {
            writeln!(f, "  concurrent with it: {op}")?;
        }
        if self.concurrent_omitted > 0 {
            writeln!(f, "  ... and {} more concurrent operations", self.concurrent_omitted)?;
        }
        Ok(())
    }
}
