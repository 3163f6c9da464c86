//! The DDL policy as the statement gate's judge: fills the policy's
//! context from the session (transaction, search_path, tables it created),
//! the catalog snapshot and the usage registry, and turns its decision into
//! what the gate does (forward, warn, refuse, rewrite).

use super::gate::{
    GatePolicy, GateStats, Judge, Judgement, Memory, Rewrite, RewriteStep, SessionFacts,
};
use super::tracker::TrackingContext;
use crate::analysis::classify::classify;
use crate::analysis::{fingerprint, search_path, ObjectUse, ObjectUseKind, RelationName};
use crate::config::Config;
use crate::config::PolicySettings;
use crate::guard::lock::{strong_lock, LockMode};
use crate::guard::GuardSettings;
use crate::policy::statement::Op;
use crate::policy::{self, Context, Dependent, Mode, ObjectKind, Verdict};
use crate::usage::dependents::{self, rfc3339, Target};
use crate::usage::{now_ms, ClientIdentity, RuleHit};
use crate::wire::messages::ProxyError;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::info;

/// Tables a session is remembered to have created (the oldest go first: a
/// session that creates a temp table per request must not grow without end).
const MAX_REMEMBERED: usize = 64;

/// The policy of one configuration, with what it reads.
pub struct PolicyJudge {
    /// A rule that reads UPDATE/DELETE with WHERE is turned on.
    filtered_writes: bool,
    settings: PolicySettings,
    tracking: TrackingContext,
    window: Duration,
    stats: Arc<GateStats>,
}

/// The gate's policy for `config`: the judge, and guarded execution unless
/// the policy only observes.
pub fn gate_policy(
    config: &Config,
    tracking: &TrackingContext,
    stats: &Arc<GateStats>,
) -> GatePolicy {
    let p = &config.policy;
    let guard = (p.mode != Mode::Observe).then(|| GuardSettings {
        lock_timeout: p.lock_timeout.0,
        max_attempts: p.max_attempts.max(1),
        retry_backoff_max: p.retry_backoff_max.0,
        preflight_wait: p.preflight_wait.0,
        preflight_min_age: p.preflight_min_age.map_or(p.lock_timeout.0 / 2, |d| d.0),
        lock_timeout_schedule: p.lock_timeout_schedule.iter().map(|d| d.0).collect(),
        terminate_idle_after: p.terminate_idle_blockers_after.map(|d| d.0),
        build_statement_timeout: p.build_statement_timeout.0,
    });
    GatePolicy {
        judge: Arc::new(PolicyJudge {
            filtered_writes: p.mode != Mode::Observe
                && policy::catalog::find("duplicate-column-assignment")
                    .is_some_and(|r| p.configured(r) != policy::Action::Allow),
            settings: p.clone(),
            tracking: tracking.clone(),
            window: config.usage.window.0,
            stats: stats.clone(),
        }),
        guard,
    }
}

impl Judge for PolicyJudge {
    fn judges_filtered_writes(&self) -> bool {
        self.filtered_writes
    }

    fn judge(&self, sql: &str, facts: &SessionFacts<'_>, memory: &mut Memory) -> Judgement {
        let statement = policy::Statement::new(sql);
        let catalog = self.tracking.catalogs.get(&facts.identity.database);
        let usage = RegistryUsage {
            judge: self,
            facts,
            since_ms: now_ms().saturating_sub(self.window.as_millis() as u64),
        };
        let ctx = Context {
            in_transaction: facts.in_transaction,
            created: memory.created.clone(),
            catalog: Some(&catalog),
            search_path: if facts.search_path.is_empty() {
                vec!["public".to_string()]
            } else {
                search_path::split_list(facts.search_path)
            },
            wrote_rows: facts.wrote_rows,
            exclusive_locked: memory.locked_in_transaction.clone(),
            session: policy::Session {
                user: facts.identity.user.clone(),
                database: facts.identity.database.clone(),
                application_name: facts.identity.application_name.clone(),
            },
            usage: &usage,
            ..Context::default()
        };
        let decision = policy::decide(&statement, &ctx, &self.settings);
        // Without a snapshot nothing proves the table was new.
        let known =
            |t: &RelationName| catalog.is_empty() || catalog.find(t, &ctx.search_path).is_some();
        remember(&statement, sql, facts.in_transaction, known, memory);
        for f in decision
            .findings
            .iter()
            .filter(|f| f.action != policy::Action::Allow)
        {
            self.stats.finding(f.rule, f.action.as_str());
        }
        for f in decision
            .findings
            .iter()
            .filter(|f| f.action != policy::Action::Allow)
        {
            info!(
                rule = f.rule,
                action = f.action.as_str(),
                fingerprint = %fingerprint(sql).text,
                "policy: {}",
                f.reason
            );
        }
        for o in &decision.overrides {
            info!(rule = %o.rule, reason = %o.reason, "policy: override comment honoured");
        }
        memory.hits = decision
            .findings
            .iter()
            .filter(|f| f.action != policy::Action::Allow || f.allowed_by_comment.is_some())
            .map(|f| RuleHit {
                rule: f.rule.to_string(),
                action: f.action.as_str().to_string(),
                allowed_by_comment: f.allowed_by_comment.clone(),
            })
            .collect();
        let warnings: Vec<ProxyError> = decision
            .notices
            .iter()
            .map(|n| ProxyError::warning("01000", n.clone()))
            .collect();
        match decision.verdict {
            Verdict::Forward if warnings.is_empty() => Judgement::Forward,
            Verdict::Forward => Judgement::Warn(warnings),
            Verdict::Block(r) => Judgement::Block(
                ProxyError::error(r.sqlstate, r.message)
                    .with_detail(r.detail)
                    .with_hint(r.hint),
            ),
            Verdict::Rewrite(plan) => Judgement::Rewrite(rewrite_of(plan, warnings, sql)),
            Verdict::DeferAfterCommit(plan) => Judgement::Defer(rewrite_of(plan, warnings, sql)),
        }
    }
}

/// The gate's form of a policy's safe sequence.
fn rewrite_of(plan: policy::Plan, notices: Vec<ProxyError>, original: &str) -> Rewrite {
    Rewrite {
        steps: plan
            .steps
            .into_iter()
            .map(|s| RewriteStep {
                sql: s.sql,
                description: s.description,
                only_if: s.only_if,
            })
            .collect(),
        tag: plan.tag,
        notices,
        guard: None,
        original: original.to_string(),
    }
}

/// Keeps what later statements of the session are judged with: tables it
/// created (rules relax on them) and tables its transaction locked ACCESS
/// EXCLUSIVE.
fn remember(
    statement: &policy::Statement,
    sql: &str,
    in_transaction: bool,
    exists: impl Fn(&RelationName) -> bool,
    memory: &mut Memory,
) {
    for op in &statement.ops {
        if let Op::CreateTable {
            table,
            if_not_exists,
            ..
        } = op
        {
            // `IF NOT EXISTS` on a table that may exist creates nothing.
            if *if_not_exists && exists(table) {
                continue;
            }
            if memory.created.len() >= MAX_REMEMBERED {
                memory.created.remove(0);
            }
            memory.created.push(table.clone());
        }
    }
    if in_transaction {
        if let Some((LockMode::AccessExclusive, targets)) =
            strong_lock(&classify(&fingerprint(sql).text))
        {
            memory.locked_in_transaction.extend(targets);
        }
    }
}

/// The usage registry as the policy's usage lookup, without the issuing
/// session's own identity and within `usage.window`.
struct RegistryUsage<'a> {
    judge: &'a PolicyJudge,
    facts: &'a SessionFacts<'a>,
    since_ms: u64,
}

impl policy::Usage for RegistryUsage<'_> {
    fn dependents(
        &self,
        kind: ObjectKind,
        object: &RelationName,
        column: Option<&str>,
    ) -> Vec<Dependent> {
        match kind {
            ObjectKind::Table | ObjectKind::View | ObjectKind::MaterializedView => {
                self.relation_dependents(object, column)
            }
            // Read as a relation (`SELECT last_value FROM s`) or drawn from.
            ObjectKind::Sequence => {
                let mut deps = self.relation_dependents(object, None);
                for d in self.object_dependents(|u, path| {
                    u.kind == ObjectUseKind::Sequence && self.names(&u.name, object, path)
                }) {
                    if !deps.iter().any(|x| x.client == d.client) {
                        deps.push(d);
                    }
                }
                deps
            }
            ObjectKind::Function => self.object_dependents(|u, path| {
                u.kind == ObjectUseKind::Function && self.names(&u.name, object, path)
            }),
            ObjectKind::Type => self.object_dependents(|u, path| {
                u.kind == ObjectUseKind::Type && self.names(&u.name, object, path)
            }),
            ObjectKind::Schema => self.schema_dependents(&object.name),
            _ => Vec::new(),
        }
    }
}

impl RegistryUsage<'_> {
    /// Clients that used the table, view or sequence `object` (or its
    /// `column`) as a relation.
    fn relation_dependents(&self, object: &RelationName, column: Option<&str>) -> Vec<Dependent> {
        let tracking = &self.judge.tracking;
        let me = self.facts.identity;
        // Only the shapes that name the table (any schema) are expanded.
        let names_it = |a: &crate::analysis::Analysis| {
            a.relations.iter().any(|r| r.relation.name == object.name)
        };
        let rows: Vec<_> = tracking
            .usage
            .rows_where(names_it, |db| tracking.catalogs.get(db))
            .into_iter()
            .filter(|r| r.client.database == me.database && r.client != *me)
            .collect();
        let schema = object.schema.clone().unwrap_or_else(|| {
            let catalog = tracking.catalogs.get(&me.database);
            let path = search_path::split_list(self.facts.search_path);
            catalog
                .find(object, &path)
                .map(|t| t.schema.clone())
                .unwrap_or_else(|| "public".to_string())
        });
        let target = Target::new(&format!("{schema}.{}", object.name), column);
        dependents::dependents(&rows, &target, self.since_ms)
            .into_iter()
            .map(|d| Dependent {
                client: describe_client(&d.client),
                dependency: if d.implicit { "implicit" } else { d.dependency },
                last_used: rfc3339(d.last_seen_ms),
                fingerprint: d.implicit_fingerprint.unwrap_or(d.fingerprint),
            })
            .collect()
    }

    /// Clients other than the issuing one, in its database and within the
    /// window, with a statement shape using an object that `uses` accepts
    /// (given the search_path the statement ran under).
    fn object_dependents(&self, uses: impl Fn(&ObjectUse, &str) -> bool) -> Vec<Dependent> {
        let me = self.facts.identity;
        let records = self
            .judge
            .tracking
            .usage
            .statements_where(|a| !a.objects.is_empty())
            .into_iter()
            .filter(|(r, a)| {
                r.client.database == me.database
                    && r.client != *me
                    && r.last_seen_ms >= self.since_ms
                    && a.objects.iter().any(|u| uses(u, &r.search_path))
            })
            .map(|(r, _)| (r.client, r.last_seen_ms, r.calls, r.fingerprint));
        by_client(records)
    }

    /// Clients that used a relation in `schema` (as resolved with their
    /// search_path) or named an object qualified with it.
    fn schema_dependents(&self, schema: &str) -> Vec<Dependent> {
        let tracking = &self.judge.tracking;
        let me = self.facts.identity;
        let may_be_in_it = |a: &crate::analysis::Analysis| {
            a.relations
                .iter()
                .any(|r| r.relation.schema.as_deref().is_none_or(|s| s == schema))
        };
        let rows = tracking
            .usage
            .rows_where(may_be_in_it, |db| tracking.catalogs.get(db))
            .into_iter()
            .filter(|r| {
                r.client.database == me.database
                    && r.client != *me
                    && r.last_seen_ms >= self.since_ms
                    && r.schema == schema
            });
        let objects = tracking
            .usage
            .statements_where(|a| {
                a.objects
                    .iter()
                    .any(|u| u.name.schema.as_deref() == Some(schema))
            })
            .into_iter()
            .map(|(r, _)| r)
            .filter(|r| {
                r.client.database == me.database
                    && r.client != *me
                    && r.last_seen_ms >= self.since_ms
            })
            .map(|r| (r.client, r.last_seen_ms, r.calls, r.fingerprint));
        by_client(
            rows.map(|r| (r.client, r.last_seen_ms, r.calls, r.fingerprint))
                .chain(objects),
        )
    }

    /// Whether a use written `used` (under the search_path `path`) may be the
    /// object the DDL names as `object`. A name qualified on both sides must
    /// match exactly; a qualified DDL name matches an unqualified use whose
    /// search_path holds that schema; an unqualified one matches by name
    /// when the issuer's search_path could find the used schema.
    fn names(&self, used: &RelationName, object: &RelationName, path: &str) -> bool {
        if used.name != object.name {
            return false;
        }
        let on_path = |p: &str, schema: &str| {
            let list = if p.is_empty() {
                vec!["$user".to_string(), "public".to_string()]
            } else {
                search_path::split_list(p)
            };
            // `$user` may name any schema: assume it could be this one.
            list.iter().any(|s| s == schema || s == "$user")
        };
        match (&used.schema, &object.schema) {
            (Some(u), Some(o)) => u == o,
            (None, Some(o)) => on_path(path, o),
            (Some(u), None) => on_path(self.facts.search_path, u),
            (None, None) => true,
        }
    }
}

/// "application_name ... (user ..., address)" as refusals name a client.
fn describe_client(c: &ClientIdentity) -> String {
    format!(
        "application_name {:?} (user {:?}, {})",
        c.application_name, c.user, c.client_addr
    )
}

/// One dependent per client from (client, last seen, calls, fingerprint)
/// uses: its latest use and the fingerprint of its most executed shape.
fn by_client(uses: impl IntoIterator<Item = (ClientIdentity, u64, u64, String)>) -> Vec<Dependent> {
    let mut by: BTreeMap<ClientIdentity, (u64, u64, String)> = BTreeMap::new();
    for (client, last, calls, fingerprint) in uses {
        let e = by.entry(client).or_insert((0, 0, String::new()));
        e.0 = e.0.max(last);
        if calls > e.1 || e.2.is_empty() {
            e.1 = calls;
            e.2 = fingerprint;
        }
    }
    by.into_iter()
        .map(|(client, (last, _, fingerprint))| Dependent {
            client: describe_client(&client),
            dependency: "explicit",
            last_used: rfc3339(last),
            fingerprint,
        })
        .collect()
}
