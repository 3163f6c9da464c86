//! What a DDL did to the traffic on its table: calls, errors and p50/p99
//! latency of the other clients' reads and writes of that table in the
//! minutes before, during and after it, from the per-minute buckets of the
//! latency timeline (DESIGN section 6, "with the target table's latency
//! and errors before, during and after it").
//!
//! Windows are whole minutes: "before" is the [`WINDOW_MINUTES`] minutes
//! before the minute the DDL started in, "during" the minutes it spanned
//! (start to finish, both included), "after" the [`WINDOW_MINUTES`] minutes
//! after the one it finished in. "after" needs time to pass: the impact is
//! recomputed until its last minute has ended, then it is complete.

use super::timeline::MinuteSlot;
use super::{ClientIdentity, LatencyHistogram, UsageRegistry};
use crate::analysis::{Analysis, RelationName, StatementKind};
use std::collections::HashSet;

/// Minutes of the "before" and "after" windows.
pub const WINDOW_MINUTES: u64 = 5;

const MINUTE_MS: u64 = 60_000;

/// One window's traffic on the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowStats {
    /// Statements finished in the window.
    pub calls: u64,
    /// Those that failed.
    pub errors: u64,
    /// Median latency, µs (0 without calls).
    pub p50_us: u64,
    /// 99th percentile latency, µs (0 without calls).
    pub p99_us: u64,
}

/// The traffic on a DDL's table before, during and after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Impact {
    /// The [`WINDOW_MINUTES`] minutes before the DDL's first minute.
    pub before: WindowStats,
    /// The minutes the DDL spanned.
    pub during: WindowStats,
    /// The [`WINDOW_MINUTES`] minutes after the DDL's last minute.
    pub after: WindowStats,
    /// What the impact is known to be.
    pub state: ImpactState,
}

/// Whether an impact is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImpactState {
    /// Not measured: the DDL names no table (a function, a role, ...), or
    /// not computed yet.
    #[default]
    None,
    /// Measured so far; "after" still grows.
    Partial,
    /// Every window has ended.
    Complete,
}

impl ImpactState {
    /// The name stored and shown: `none`, `partial`, `complete`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImpactState::None => "none",
            ImpactState::Partial => "partial",
            ImpactState::Complete => "complete",
        }
    }

    /// Inverse of [`as_str`](Self::as_str); unknown text reads as `None`.
    pub fn parse(s: &str) -> ImpactState {
        match s {
            "partial" => ImpactState::Partial,
            "complete" => ImpactState::Complete,
            _ => ImpactState::None,
        }
    }
}

/// The minutes (since the epoch, inclusive ranges) of the three windows of
/// a DDL that ran from `start_ms` to `end_ms`.
pub fn windows(start_ms: u64, end_ms: u64) -> [(u64, u64); 3] {
    let first = start_ms.min(end_ms) / MINUTE_MS;
    let last = end_ms / MINUTE_MS;
    [
        (
            first.saturating_sub(WINDOW_MINUTES),
            first.saturating_sub(1),
        ),
        (first, last),
        (last + 1, last + WINDOW_MINUTES),
    ]
}

/// True when the "after" window of a DDL that finished at `end_ms` has
/// ended at `now_ms`.
pub fn is_complete(end_ms: u64, now_ms: u64) -> bool {
    now_ms / MINUTE_MS > windows(end_ms, end_ms)[2].1
}

/// The impact measured from `slots` (the minute buckets of the statements
/// that count), as known at `now_ms`.
pub fn from_slots<'a>(
    slots: impl IntoIterator<Item = &'a MinuteSlot>,
    start_ms: u64,
    end_ms: u64,
    now_ms: u64,
) -> Impact {
    let ranges = windows(start_ms, end_ms);
    let mut hist: [LatencyHistogram; 3] = Default::default();
    let mut stats = [WindowStats::default(); 3];
    for slot in slots {
        // "before" is empty when the DDL started in the epoch's first minutes.
        let Some(i) = ranges
            .iter()
            .position(|(a, b)| a <= b && (*a..=*b).contains(&slot.minute))
        else {
            continue;
        };
        stats[i].calls += slot.calls;
        stats[i].errors += slot.errors;
        hist[i].merge_sparse(&slot.histogram);
    }
    for (s, h) in stats.iter_mut().zip(&hist) {
        if s.calls > 0 {
            s.p50_us = h.quantile(0.5);
            s.p99_us = h.quantile(0.99);
        }
    }
    Impact {
        before: stats[0],
        during: stats[1],
        after: stats[2],
        state: if is_complete(end_ms, now_ms) {
            ImpactState::Complete
        } else {
            ImpactState::Partial
        },
    }
}

/// `relation` as a DDL names it (`schema.name` or `name`), split.
fn split_name(relation: &str) -> (Option<&str>, &str) {
    match relation.rsplit_once('.') {
        Some((schema, name)) => (Some(schema), name),
        None => (None, relation),
    }
}

/// Whether a statement's relation is the DDL's: same name, and same schema
/// when both are qualified (an unqualified name may be either).
fn same_relation(used: &RelationName, schema: Option<&str>, name: &str) -> bool {
    used.name == name
        && match (used.schema.as_deref(), schema) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
}

/// Whether the statements of `analysis` count for a DDL on the relation:
/// reads and writes that use it.
fn counts(analysis: &Analysis, schema: Option<&str>, name: &str) -> bool {
    matches!(analysis.kind, StatementKind::Read | StatementKind::Write)
        && analysis
            .relations
            .iter()
            .any(|r| same_relation(&r.relation, schema, name))
}

impl UsageRegistry {
    /// The impact of a DDL by `who` on `relation` (as written) that ran from
    /// `start_ms` to `end_ms`, as known at `now_ms`.
    pub fn impact(
        &self,
        relation: &str,
        who: &ClientIdentity,
        start_ms: u64,
        end_ms: u64,
        now_ms: u64,
    ) -> Impact {
        let shapes = self.shapes_of_others(relation, who);
        self.impact_of_shapes(&shapes, start_ms, end_ms, now_ms)
    }

    /// The statement shapes that count for a DDL by `who` on `relation`:
    /// those that read or write the relation and that a client other than
    /// `who` ran in the same database. The minute buckets are per shape,
    /// not per client: a shape counts whole as soon as another client ran
    /// it. (One walk over the entries: callers reuse the answer for the
    /// DDL of one migration on one table.)
    pub fn shapes_of_others(&self, relation: &str, who: &ClientIdentity) -> Vec<u64> {
        super::held::settle(self);
        let (schema, name) = split_name(relation);
        let on_table: HashSet<u64> = self
            .shapes
            .iter()
            .filter(|s| counts(&s.value().analysis, schema, name))
            .map(|s| *s.key())
            .collect();
        let mut others: HashSet<u64> = HashSet::new();
        if on_table.is_empty() {
            return Vec::new();
        }
        let mut identities: std::collections::HashMap<u64, bool> = Default::default();
        for item in self.entries.iter() {
            let (client, fp) = *item.key();
            if !on_table.contains(&fp) || others.contains(&fp) {
                continue;
            }
            let other = *identities.entry(client).or_insert_with(|| {
                self.clients
                    .key_of(client)
                    .is_some_and(|(c, _)| c.database == who.database && c != *who)
            });
            if other {
                others.insert(fp);
            }
        }
        others.into_iter().collect()
    }

    /// The impact measured from the minute buckets of `shapes`.
    pub fn impact_of_shapes(
        &self,
        shapes: &[u64],
        start_ms: u64,
        end_ms: u64,
        now_ms: u64,
    ) -> Impact {
        super::held::settle(self);
        let slots: Vec<MinuteSlot> = shapes
            .iter()
            .filter_map(|fp| self.shapes.get(fp))
            .flat_map(|s| {
                s.value()
                    .latency
                    .minutes
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        from_slots(&slots, start_ms, end_ms, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Analyzer;
    use crate::usage::histogram::SparseHistogram;
    use crate::usage::identity::test_identity as client;
    use crate::usage::now_ms;

    fn slot(minute: u64, latencies: &[u64], errors: u64) -> MinuteSlot {
        let mut histogram = SparseHistogram::default();
        for us in latencies {
            histogram.record(*us);
        }
        MinuteSlot {
            minute,
            calls: latencies.len() as u64,
            errors,
            total_us: latencies.iter().sum(),
            max_us: latencies.iter().copied().max().unwrap_or(0),
            histogram,
        }
    }

    #[test]
    fn buckets_fall_into_before_during_and_after() {
        let m = 1_000_000u64; // a minute number
        let start = m * MINUTE_MS + 30_000;
        let end = (m + 1) * MINUTE_MS + 5_000; // spans two minutes
        let slots = vec![
            slot(m - 6, &[1], 0),             // too early
            slot(m - 5, &[100, 100, 100], 0), // before
            slot(m - 1, &[100], 1),           // before
            slot(m, &[5_000, 5_000], 2),      // during
            slot(m + 1, &[200_000], 0),       // during
            slot(m + 2, &[120, 130], 0),      // after
            slot(m + 6, &[100], 0),           // after, last minute
            slot(m + 7, &[100], 0),           // too late
        ];
        let during_now = end + 1000;
        let i = from_slots(&slots, start, end, during_now);
        assert_eq!((i.before.calls, i.before.errors), (4, 1));
        assert_eq!((i.during.calls, i.during.errors), (3, 2));
        assert_eq!((i.after.calls, i.after.errors), (3, 0));
        assert!(i.before.p99_us < 200, "{:?}", i.before);
        assert!(
            i.during.p50_us >= 5_000 && i.during.p50_us < 8_000,
            "{:?}",
            i.during
        );
        assert!(i.during.p99_us >= 200_000, "{:?}", i.during);
        assert_eq!(i.state, ImpactState::Partial, "after has not ended");
        // Once the last "after" minute has ended the impact is complete.
        assert_eq!(
            from_slots(&slots, start, end, (m + 7) * MINUTE_MS).state,
            ImpactState::Complete
        );
        assert_eq!(
            from_slots(&slots, start, end, (m + 7) * MINUTE_MS - 1).state,
            ImpactState::Partial
        );
        // No traffic: zero calls and no quantiles.
        let none = from_slots(&[], start, end, during_now);
        assert_eq!(none.during, WindowStats::default());
    }

    #[test]
    fn only_other_clients_reads_and_writes_of_the_table_count() {
        let reg = UsageRegistry::new(100);
        let analyzer = Analyzer::new(100);
        let app = reg.client_id(&client("app"), "");
        let migrate_who = client("migrate");
        let migrate = reg.client_id(&migrate_who, "");
        for _ in 0..3 {
            reg.record(
                &app,
                &analyzer.analyze("SELECT email FROM app.users WHERE id = 1"),
                100,
                None,
            );
        }
        reg.record(
            &app,
            &analyzer.analyze("UPDATE users SET email = 'x'"),
            100,
            Some(*b"23505"),
        );
        // Another table, the migration's own statement, and the DDL itself.
        reg.record(&app, &analyzer.analyze("SELECT * FROM orders"), 100, None);
        reg.record(
            &migrate,
            &analyzer.analyze("SELECT count(*) FROM users"),
            100,
            None,
        );
        reg.record(
            &migrate,
            &analyzer.analyze("ALTER TABLE users ADD COLUMN x int"),
            100,
            None,
        );
        // Same name in another schema, qualified: not the table.
        reg.record(
            &app,
            &analyzer.analyze("SELECT * FROM other.users"),
            100,
            None,
        );
        let now = now_ms();
        let i = reg.impact("app.users", &migrate_who, now, now, now);
        assert_eq!((i.during.calls, i.during.errors), (4, 1), "{i:?}");
        assert_eq!(i.before.calls + i.after.calls, 0);
        // Unqualified in the DDL: the qualified reads may be of it too.
        let i = reg.impact("users", &migrate_who, now, now, now);
        assert_eq!(i.during.calls, 5, "{i:?}");
        // The app's own DDL would count the migration's read.
        let i = reg.impact("users", &client("app"), now, now, now);
        assert_eq!(i.during.calls, 1, "{i:?}");
    }
}
