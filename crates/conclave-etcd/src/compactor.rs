//! Automatic compaction of the key-value history: etcd's `--auto-compaction-mode` and
//! `--auto-compaction-retention`.
//!
//! The store holds every revision since the last compaction in memory, so that `get --rev` and
//! `watch --rev` can look back. Without compactions a cluster that keeps writing grows without
//! bound, and its snapshots, which carry the held history, with it. The compactor keeps either
//! the last N revisions or the revisions of the last period, and proposes `Compact` for the
//! rest through the consensus, like a client's `etcdctl compaction` would.
//!
//! One member proposes for a protocol that orders writes (the [lease
//! holder](crate::EtcdContext::lease_holder): the leader, or Totem's lowest member), so the
//! compaction applies at the same point on every replica. Under gossip a compaction is local to
//! the replica it reaches, and every member compacts its own history.
//!
//! Every member samples its current revision over time, whether it proposes or not, so that a
//! member that takes over in periodic mode knows at once which revision was current a period
//! ago. The same task publishes the held history and the space quota as gauges (`quota.rs`).

use conclave_kv::Command;
use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use tonic::Code;

use crate::config::ConfigError;
use crate::context::EtcdContext;
use crate::lease_keeper::Every;
use crate::metrics::{AUTO_COMPACTIONS_TOTAL, KV_HELD_BYTES, QUOTA_BYTES};

/// Which history the compactor keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Keep everything; only clients compact.
    Off,
    /// Keep the last `n` revisions: compact to the current revision minus `n`, in steps of at
    /// least a hundredth of `n` (so that a busy cluster does not propose one compaction per
    /// write), checked ten times a second. Small steps keep each compaction short: every member
    /// applies it at once, and serves nothing meanwhile (18,000 revisions took 22 ms).
    Revisions(u64),
    /// Keep what was written in the last period: compact to the revision that was current a
    /// period ago, checked ten times per period.
    Period(Duration),
}

/// The default: the last 100,000 revisions (tens of MiB of history for small values).
pub const DEFAULT_AUTO_COMPACTION: AutoCompaction = AutoCompaction::Revisions(100_000);

/// The shortest period accepted: shorter ones would compact faster than clients can read.
pub const MIN_PERIOD: Duration = Duration::from_secs(1);

/// How often the compactor looks, at most: once per second.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How often it looks in revision mode, where a busy cluster has a step's worth of revisions to
/// drop many times a second.
const REVISION_CHECK_INTERVAL: Duration = Duration::from_millis(100);

impl AutoCompaction {
    /// Reads etcd's pair of flags: `mode` is `revision` or `periodic`; `retention` is a number of
    /// revisions in revision mode, and in periodic mode a duration (`90s`, `30m`, `1h`, `1h30m`)
    /// or a bare number of hours, as etcd reads it. A retention of `0` turns compaction off.
    pub fn parse(mode: &str, retention: &str) -> Result<Self, ConfigError> {
        let retention = retention.trim();
        match mode {
            "revision" => {
                let n: u64 = retention.parse().map_err(|_| ConfigError {
                    key: "auto_compaction_retention",
                    value: retention.to_string(),
                    expected: "a number of revisions to keep (0 for off) in revision mode",
                })?;
                Ok(if n == 0 { Self::Off } else { Self::Revisions(n) })
            }
            "periodic" => {
                let bad = || ConfigError {
                    key: "auto_compaction_retention",
                    value: retention.to_string(),
                    expected: "a duration such as 90s, 30m, 1h or 1h30m, or a number of hours \
                               (0 for off), of at least 1s, in periodic mode",
                };
                let period = parse_period(retention).ok_or_else(bad)?;
                if period.is_zero() {
                    return Ok(Self::Off);
                }
                if period < MIN_PERIOD {
                    return Err(bad());
                }
                Ok(Self::Period(period))
            }
            other => Err(ConfigError {
                key: "auto_compaction_mode",
                value: other.to_string(),
                expected: "revision or periodic",
            }),
        }
    }

    /// How often the compactor checks under this policy.
    fn check_interval(self) -> Duration {
        match self {
            Self::Period(period) => (period / 10).clamp(Duration::from_millis(100), CHECK_INTERVAL),
            Self::Revisions(_) => REVISION_CHECK_INTERVAL,
            Self::Off => CHECK_INTERVAL,
        }
    }
}

/// A bare number of hours (`1`, `0.5`), or a sequence of `<number><unit>` with units `h`, `m`,
/// `s` and `ms` (`1h30m`, `90s`).
fn parse_period(text: &str) -> Option<Duration> {
    if let Ok(hours) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(hours * 3600.0).ok();
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let part = match &rest[..unit] {
            "h" => Duration::from_secs(number.checked_mul(3600)?),
            "m" => Duration::from_secs(number.checked_mul(60)?),
            "s" => Duration::from_secs(number),
            "ms" => Duration::from_millis(number),
            _ => return None,
        };
        total = total.checked_add(part)?;
        rest = &rest[unit..];
    }
    Some(total)
}

/// What the compactor knows between checks: the revisions it saw current, and when.
#[derive(Debug)]
struct Planner {
    policy: AutoCompaction,
    /// `(when, current revision)`, oldest first, one per check interval (periodic mode only).
    samples: VecDeque<(Instant, i64)>,
}

impl Planner {
    fn new(policy: AutoCompaction) -> Self {
        Self { policy, samples: VecDeque::new() }
    }

    /// Records that `current` was the current revision at `now`.
    fn observe(&mut self, now: Instant, current: i64) {
        let AutoCompaction::Period(period) = self.policy else { return };
        self.samples.push_back((now, current));
        // Keep one sample from before the period's start: it is the one to compact to.
        while self.samples.len() >= 2 && now.duration_since(self.samples[1].0) >= period {
            self.samples.pop_front();
        }
    }

    /// The revision to compact to now, if a compaction is due; `compacted` is the store's last
    /// compaction point.
    fn target(&self, now: Instant, current: i64, compacted: i64) -> Option<i64> {
        let target = match self.policy {
            AutoCompaction::Off => return None,
            AutoCompaction::Revisions(keep) => {
                let keep = i64::try_from(keep).unwrap_or(i64::MAX);
                let target = current.saturating_sub(keep);
                let step = (keep / 100).max(1);
                (target >= compacted.saturating_add(step)).then_some(target)?
            }
            AutoCompaction::Period(period) => {
                let (when, revision) = *self.samples.front()?;
                (now.duration_since(when) >= period).then_some(revision)?
            }
        };
        // Revision 1 is the empty store's; there is nothing below it to drop.
        (target > compacted && target > 1).then_some(target)
    }
}

/// The task that compacts the history under an [`AutoCompaction`] policy. Run one per member
/// (`serve` does); it proposes only while its member is the one to (see the module docs).
#[derive(Debug)]
pub struct AutoCompactor {
    ctx: EtcdContext,
    planner: Planner,
}

impl AutoCompactor {
    pub fn new(ctx: EtcdContext) -> Self {
        let planner = Planner::new(ctx.options.auto_compaction);
        Self { ctx, planner }
    }

    /// Checks until `shutdown` completes. With compaction off it still publishes, every
    /// second, how much history the store holds against the space quota.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut clock = Every::new(self.planner.policy.check_interval(), shutdown);
        while clock.tick().await {
            self.pass().await;
        }
    }

    /// One check: sample the revision, and propose a compaction if one is due here.
    async fn pass(&mut self) {
        let now = Instant::now();
        let (current, compacted) = {
            let store = self.ctx.read_store();
            (store.current_revision(), store.compact_revision())
        };
        self.publish_space();
        self.planner.observe(now, current);
        if self.planner.policy == AutoCompaction::Off || !self.proposes_here() {
            return;
        }
        let Some(revision) = self.planner.target(now, current, compacted) else { return };
        match self.ctx.propose(&Command::Compact { revision }).await {
            Ok(_) => {
                metrics::counter!(AUTO_COMPACTIONS_TOTAL, "protocol" => self.ctx.protocol)
                    .increment(1);
                tracing::debug!(revision, "compacted the history");
            }
            // Someone (a client, or a former holder) compacted as far or further.
            Err(status) if status.code() == Code::OutOfRange => {}
            // Left for the next check.
            Err(status) => {
                tracing::warn!(revision, error = %status.message(), "automatic compaction failed");
            }
        }
    }

    /// `conclave_kv_held_bytes` and `conclave_quota_bytes`, for the quota alert.
    fn publish_space(&self) {
        let held = self.ctx.read_store().held_bytes();
        let protocol = self.ctx.protocol;
        metrics::gauge!(KV_HELD_BYTES, "protocol" => protocol).set(held as f64);
        metrics::gauge!(QUOTA_BYTES, "protocol" => protocol)
            .set(self.ctx.limits.quota_bytes as f64);
    }

    fn proposes_here(&self) -> bool {
        if self.ctx.consensus.guarantees().linearizable_writes {
            self.ctx.is_lease_holder()
        } else {
            self.ctx.consensus.status().role != conclave_core::Role::Recovering
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_etcds_forms_and_names_the_bad_key() {
        let parse = AutoCompaction::parse;
        assert_eq!(parse("revision", "1000"), Ok(AutoCompaction::Revisions(1000)));
        assert_eq!(parse("revision", "0"), Ok(AutoCompaction::Off));
        assert_eq!(parse("periodic", "1"), Ok(AutoCompaction::Period(Duration::from_secs(3600))));
        assert_eq!(parse("periodic", "0.5"), Ok(AutoCompaction::Period(Duration::from_secs(1800))));
        assert_eq!(
            parse("periodic", "1h30m"),
            Ok(AutoCompaction::Period(Duration::from_secs(5400)))
        );
        assert_eq!(parse("periodic", "90s"), Ok(AutoCompaction::Period(Duration::from_secs(90))));
        assert_eq!(parse("periodic", "0"), Ok(AutoCompaction::Off));
        let err = parse("revision", "1h").unwrap_err();
        assert_eq!(err.key, "auto_compaction_retention");
        assert_eq!(err.value, "1h");
        for bad in ["", "h", "10x", "500ms", "-1", "1h-", "NaN"] {
            let err = parse("periodic", bad).unwrap_err();
            assert_eq!(err.key, "auto_compaction_retention", "{bad:?}");
        }
        let err = parse("hourly", "1").unwrap_err();
        assert_eq!(err.to_string(), "invalid auto_compaction_mode = hourly: revision or periodic");
    }

    #[test]
    fn revision_mode_keeps_the_last_n_revisions_in_steps_of_a_hundredth() {
        let planner = Planner::new(AutoCompaction::Revisions(1000));
        let now = Instant::now();
        assert_eq!(planner.target(now, 500, 0), None, "fewer revisions than kept");
        assert_eq!(planner.target(now, 1009, 0), None, "not yet a hundredth past the window");
        assert_eq!(planner.target(now, 1010, 0), Some(10));
        assert_eq!(planner.target(now, 1015, 10), None);
        assert_eq!(planner.target(now, 1020, 10), Some(20));
        assert_eq!(planner.target(now, 1020, 5000), None, "a client compacted further");
        let tiny = Planner::new(AutoCompaction::Revisions(1));
        assert_eq!(tiny.target(now, 3, 0), Some(2));
        assert_eq!(tiny.target(now, 2, 0), None, "revision 1 is the empty store's");
    }

    #[test]
    fn periodic_mode_compacts_to_the_revision_current_a_period_ago() {
        let period = Duration::from_secs(10);
        let mut planner = Planner::new(AutoCompaction::Period(period));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        planner.observe(at(0), 5);
        assert_eq!(planner.target(at(0), 5, 0), None);
        for s in 1..10 {
            planner.observe(at(s), 5 + s as i64 * 10);
            assert_eq!(planner.target(at(s), 5 + s as i64 * 10, 0), None, "at {s} s");
        }
        planner.observe(at(10), 105);
        assert_eq!(planner.target(at(10), 105, 0), Some(5));
        planner.observe(at(13), 200);
        assert_eq!(planner.target(at(13), 200, 5), Some(35), "the sample of 3 s");
        assert_eq!(planner.target(at(13), 200, 35), None, "already there");
        assert!(planner.samples.len() <= 12, "old samples are dropped: {}", planner.samples.len());
    }

    #[test]
    fn off_never_compacts() {
        let mut planner = Planner::new(AutoCompaction::Off);
        let now = Instant::now();
        planner.observe(now, 1_000_000);
        assert_eq!(planner.target(now, 1_000_000, 0), None);
        assert!(planner.samples.is_empty());
    }
}
