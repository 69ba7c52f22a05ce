//! The workload every target runs: which keys, which operations, how fast.
//!
//! One [`WorkloadConfig`] and one seed give every target the same stream of planned operations
//! per client, so the only thing that differs between two targets is how they answer. Keys
//! are chosen uniformly or by a Zipf law (a few hot keys, as in real key-value traffic);
//! operations are reads, blind writes or compare-and-swaps in a fixed mix. Every written value
//! is unique (`c<client>-<seq>`, padded to the value size), which is what lets the checkers tell
//! which write a read observed.

use conclave_core::DetRng;
use std::fmt;

/// How keys are picked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KeyDistribution {
    Uniform,
    /// Key `k` (0-based) is picked with probability proportional to `1 / (k + 1)^exponent`.
    Zipf {
        exponent: f64,
    },
}

impl KeyDistribution {
    /// `uniform`, `zipf` (exponent 0.99, YCSB's) or `zipf:EXPONENT`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            None if text == "uniform" => Ok(Self::Uniform),
            None if text == "zipf" => Ok(Self::Zipf { exponent: 0.99 }),
            Some(("zipf", exponent)) => match exponent.parse::<f64>() {
                Ok(e) if e > 0.0 && e.is_finite() => Ok(Self::Zipf { exponent: e }),
                _ => Err(format!("`{text}`: the zipf exponent must be a positive number")),
            },
            _ => Err(format!("`{text}`: expected uniform, zipf or zipf:EXPONENT")),
        }
    }
}

impl fmt::Display for KeyDistribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Uniform => f.write_str("uniform"),
            Self::Zipf { exponent } => write!(f, "zipf:{exponent}"),
        }
    }
}

/// The share of reads, writes and compare-and-swaps, in any unit (percent, say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpMix {
    pub read: u32,
    pub write: u32,
    pub cas: u32,
}

impl OpMix {
    /// `READ:WRITE:CAS`, e.g. `50:40:10`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let numbers: Result<Vec<u32>, _> = parts.iter().map(|p| p.trim().parse::<u32>()).collect();
        match numbers.as_deref() {
            Ok([read, write, cas]) if read + write + cas > 0 => {
                Ok(Self { read: *read, write: *write, cas: *cas })
            }
            _ => Err(format!("`{text}`: expected READ:WRITE:CAS weights like 50:40:10")),
        }
    }

    fn total(&self) -> u32 {
        self.read + self.write + self.cas
    }
}

impl fmt::Display for OpMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.read, self.write, self.cas)
    }
}

/// Whether clients wait for each answer before the next request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LoopMode {
    /// Each client sends its next request when the previous one is answered.
    Closed,
    /// Requests leave at a fixed total rate whatever the answers do (up to a bound on the
    /// requests in flight per client, past which a planned request is skipped and counted).
    Open { rate_per_s: f64 },
}

/// Everything that shapes the client traffic.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadConfig {
    pub clients: usize,
    pub keys: usize,
    pub distribution: KeyDistribution,
    pub value_bytes: usize,
    pub mix: OpMix,
    pub mode: LoopMode,
    /// A request unanswered after this long is abandoned (and, if it may write, counted as
    /// possibly applied).
    pub op_timeout_ms: u64,
    /// In open loop: at most this many requests in flight per client.
    pub max_in_flight_per_client: usize,
    pub seed: u64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            clients: 8,
            keys: 16,
            distribution: KeyDistribution::Uniform,
            value_bytes: 32,
            mix: OpMix { read: 50, write: 40, cas: 10 },
            mode: LoopMode::Closed,
            op_timeout_ms: 1_000,
            max_in_flight_per_client: 32,
            seed: 1,
        }
    }
}

impl WorkloadConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.clients == 0 || self.clients > 1024 {
            return Err(format!("`clients` = {}: expected 1 to 1024", self.clients));
        }
        if self.keys == 0 || self.keys > 1_000_000 {
            return Err(format!("`keys` = {}: expected 1 to 1000000", self.keys));
        }
        if self.value_bytes > 1024 * 1024 {
            return Err(format!("`value_bytes` = {}: expected at most 1 MiB", self.value_bytes));
        }
        if self.op_timeout_ms == 0 {
            return Err("`op_timeout_ms` = 0: expected a positive timeout".into());
        }
        if let LoopMode::Open { rate_per_s } = self.mode
            && !(rate_per_s > 0.0 && rate_per_s <= 1_000_000.0)
        {
            return Err(format!("open-loop rate {rate_per_s}: expected 0 < rate <= 1000000"));
        }
        Ok(())
    }

    /// The key for index `k`; fixed width so keys sort by index.
    pub fn key(k: usize) -> String {
        format!("{KEY_PREFIX}{k:06}")
    }

    /// Every key of the workload, in order.
    pub fn all_keys(&self) -> Vec<String> {
        (0..self.keys).map(Self::key).collect()
    }
}

/// Every workload key starts with this, so one range read sees the whole state.
pub const KEY_PREFIX: &str = "lab/k";

/// Picks key indexes by a [`KeyDistribution`].
#[derive(Clone, Debug)]
pub struct KeyPicker {
    /// Cumulative probabilities (Zipf only).
    cdf: Option<Vec<f64>>,
    keys: usize,
}

impl KeyPicker {
    pub fn new(distribution: KeyDistribution, keys: usize) -> Self {
        let cdf = match distribution {
            KeyDistribution::Uniform => None,
            KeyDistribution::Zipf { exponent } => {
                let weights: Vec<f64> =
                    (0..keys).map(|k| 1.0 / ((k + 1) as f64).powf(exponent)).collect();
                let total: f64 = weights.iter().sum();
                let mut sum = 0.0;
                Some(
                    weights
                        .iter()
                        .map(|w| {
                            sum += w / total;
                            sum
                        })
                        .collect(),
                )
            }
        };
        Self { cdf, keys }
    }

    pub fn pick(&self, rng: &mut DetRng) -> usize {
        match &self.cdf {
            None => rng.below(self.keys as u64) as usize,
            Some(cdf) => {
                let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                cdf.partition_point(|&c| c < u).min(self.keys - 1)
            }
        }
    }
}

/// The kind of a planned operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpKind {
    Read,
    Write,
    Cas,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Cas => "cas",
        }
    }

    /// Whether the operation may change the store.
    pub fn may_write(self) -> bool {
        !matches!(self, Self::Read)
    }
}

/// One operation a client will send: the value a write or compare-and-swap sets is fixed here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedOp {
    pub kind: OpKind,
    pub key: String,
    /// The unique tag written by a write or compare-and-swap (the recorded value).
    pub tag: Option<String>,
}

/// One client's deterministic stream of planned operations.
#[derive(Debug)]
pub struct OpStream {
    rng: DetRng,
    picker: KeyPicker,
    mix: OpMix,
    client: u64,
    seq: u64,
}

impl OpStream {
    pub fn new(config: &WorkloadConfig, client: u64) -> Self {
        let mut rng = DetRng::new(config.seed ^ client.wrapping_mul(0xA076_1D64_78BD_642F));
        let rng = rng.fork();
        Self {
            rng,
            picker: KeyPicker::new(config.distribution, config.keys),
            mix: config.mix,
            client,
            seq: 0,
        }
    }

    pub fn next_op(&mut self) -> PlannedOp {
        self.seq += 1;
        let roll = self.rng.below(u64::from(self.mix.total())) as u32;
        let kind = if roll < self.mix.read {
            OpKind::Read
        } else if roll < self.mix.read + self.mix.write {
            OpKind::Write
        } else {
            OpKind::Cas
        };
        let key = WorkloadConfig::key(self.picker.pick(&mut self.rng));
        let tag = kind.may_write().then(|| format!("c{}-{}", self.client, self.seq));
        PlannedOp { kind, key, tag }
    }
}

/// The bytes stored for a tag: the tag, a `:` and padding up to `value_bytes`.
pub fn encode_value(tag: &str, value_bytes: usize) -> Vec<u8> {
    let mut value = Vec::with_capacity(value_bytes.max(tag.len() + 1));
    value.extend_from_slice(tag.as_bytes());
    value.push(b':');
    while value.len() < value_bytes {
        value.push(b'x');
    }
    value
}

/// The tag a stored value carries (everything before the first `:`); a value the lab did not
/// write comes back whole, so that it can never match a tag by accident.
pub fn decode_tag(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    match text.split_once(':') {
        Some((tag, _)) => tag.to_string(),
        None => format!("foreign:{text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let config = WorkloadConfig::default();
        let a: Vec<_> = {
            let mut s = OpStream::new(&config, 3);
            (0..50).map(|_| s.next_op()).collect()
        };
        let mut s = OpStream::new(&config, 3);
        let b: Vec<_> = (0..50).map(|_| s.next_op()).collect();
        assert_eq!(a, b);
        let mut other = OpStream::new(&config, 4);
        let c: Vec<_> = (0..50).map(|_| other.next_op()).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn mix_is_respected() {
        let config = WorkloadConfig {
            mix: OpMix { read: 1, write: 0, cas: 0 },
            ..WorkloadConfig::default()
        };
        let mut s = OpStream::new(&config, 1);
        assert!((0..100).all(|_| s.next_op().kind == OpKind::Read));
    }

    #[test]
    fn zipf_prefers_low_keys() {
        let picker = KeyPicker::new(KeyDistribution::Zipf { exponent: 1.2 }, 100);
        let mut rng = DetRng::new(9);
        let mut counts = [0usize; 100];
        for _ in 0..20_000 {
            counts[picker.pick(&mut rng)] += 1;
        }
        assert!(counts[0] > counts[10] * 5, "{:?}", &counts[..12]);
        assert!(counts.iter().all(|&c| c < 20_000));
    }

    #[test]
    fn values_round_trip_to_tags() {
        let value = encode_value("c1-7", 64);
        assert_eq!(value.len(), 64);
        assert_eq!(decode_tag(&value), "c1-7");
        assert_eq!(decode_tag(&encode_value("c1-7", 0)), "c1-7");
        assert_eq!(decode_tag(b"plain"), "foreign:plain");
    }

    #[test]
    fn parsing() {
        assert_eq!(KeyDistribution::parse("zipf:1.5"), Ok(KeyDistribution::Zipf { exponent: 1.5 }));
        assert!(KeyDistribution::parse("pareto").is_err());
        assert_eq!(OpMix::parse("5:4:1"), Ok(OpMix { read: 5, write: 4, cas: 1 }));
        assert!(OpMix::parse("0:0:0").is_err());
    }
}
