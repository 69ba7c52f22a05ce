//! The read path: which keys a [`RangeRequest`] selects at a revision, and how they are
//! filtered, sorted, limited and counted, following etcd's `Range`.
//!
//! `count` is the number of keys in the range at the revision, before the revision filters and
//! the limit; `more` says whether the limit cut off keys that passed the filters.

use std::cmp::Ordering;

use crate::key_range::KeyRange;
use crate::{KeyValue, KvStore, RangeRequest, RangeResponse, SortOrder, SortTarget};

impl KvStore {
    /// Answers `req` as of revision `view` (already checked against the compaction point), with
    /// `header` as the response's revision.
    pub(crate) fn range_view(&self, req: &RangeRequest, view: i64, header: i64) -> RangeResponse {
        let order = effective_order(req);
        let filtered = has_filters(req);
        // Without sorting or filtering, keys come out in key order and the limit can stop the
        // copying early; one extra key tells whether there are more.
        let keep = match (req.limit > 0, order, filtered, req.count_only) {
            (_, _, _, true) => 0,
            (true, None, false, false) => req.limit.saturating_add(1) as usize,
            _ => usize::MAX,
        };
        let mut kvs = Vec::new();
        let mut count: i64 = 0;
        let range = KeyRange::new(&req.key, &req.range_end);
        if let Some(bounds) = range.bounds() {
            for (_, history) in self.state.index.range::<_, [u8]>(bounds) {
                let Some(kv) = self.kv_at(history, view) else { continue };
                count += 1;
                if kvs.len() < keep {
                    kvs.push(kv.clone());
                }
            }
        }
        if filtered {
            kvs.retain(|kv| passes_filters(req, kv));
        }
        if let Some(order) = order {
            sort(&mut kvs, req.sort_target, order);
        }
        let mut more = false;
        if req.limit > 0 && kvs.len() as i64 > req.limit {
            kvs.truncate(req.limit as usize);
            more = true;
        }
        if req.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        RangeResponse { revision: header, kvs, more, count }
    }
}

/// The order to sort in, or `None` when key-ascending order (the index's own) is wanted.
fn effective_order(req: &RangeRequest) -> Option<SortOrder> {
    match (req.sort_order, req.sort_target) {
        (SortOrder::None | SortOrder::Ascend, SortTarget::Key) => None,
        // etcd sorts ascending when a target other than the key is named without an order.
        (SortOrder::None, _) => Some(SortOrder::Ascend),
        (order, _) => Some(order),
    }
}

fn has_filters(req: &RangeRequest) -> bool {
    req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0
}

fn passes_filters(req: &RangeRequest, kv: &KeyValue) -> bool {
    (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
        && (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
        && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
        && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
}

/// Sorts by `target`, ties broken by key; descending is the exact reverse of ascending, so the
/// result never depends on the sort algorithm.
fn sort(kvs: &mut [KeyValue], target: SortTarget, order: SortOrder) {
    let by_target = |a: &KeyValue, b: &KeyValue| -> Ordering {
        let primary = match target {
            SortTarget::Key => Ordering::Equal,
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        };
        primary.then_with(|| a.key.cmp(&b.key))
    };
    match order {
        SortOrder::Descend => kvs.sort_by(|a, b| by_target(b, a)),
        SortOrder::None | SortOrder::Ascend => kvs.sort_by(by_target),
    }
}
