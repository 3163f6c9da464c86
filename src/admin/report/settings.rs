//! `SHOW CONFIG` (the effective settings) and `SHOW RULES` (the DDL policy
//! rules in force).

use super::{columns, Cell, Report};
use crate::config::Config;

/// Keys read once at start: changing them needs a restart, not a RELOAD.
pub const RESTART_KEYS: &[&str] = &[
    "server.listen",
    "server.worker_threads",
    "server.epoll_relay",
    "upstream.user",
    "upstream.password_env",
    "admin.http_listen",
    "admin.http_token_env",
    "usage.store",
    "usage.flush_interval",
    "usage.max_entries",
    "usage.max_memory",
    "usage.analysis_cache",
    "usage.catalog_refresh",
];

fn flat(config: &Config) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    match toml::Value::try_from(config) {
        Ok(value) => flatten("", &value, &mut pairs),
        Err(e) => tracing::warn!("cannot render the configuration: {e}"),
    }
    pairs
}

/// The keys of [`RESTART_KEYS`] whose value differs between `old` and
/// `new` (a reload applies the rest; these wait for a restart).
pub fn restart_keys_changed(old: &Config, new: &Config) -> Vec<&'static str> {
    let (old, new) = (flat(old), flat(new));
    let value = |pairs: &[(String, String)], key: &str| {
        pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    };
    RESTART_KEYS
        .iter()
        .copied()
        .filter(|key| value(&old, key) != value(&new, key))
        .collect()
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        toml::Value::Array(items) if items.iter().all(|i| i.is_table()) && !items.is_empty() => {
            for item in items {
                // `[[admin.users]]`: one key per user, by name.
                let name = item
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("?")
                    .to_string();
                if let toml::Value::Table(t) = item {
                    for (k, v) in t.iter().filter(|(k, _)| *k != "name") {
                        flatten(&format!("{prefix}.{name}.{k}"), v, out);
                    }
                }
            }
        }
        toml::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// The effective configuration, one row per key, with whether a RELOAD
/// applies it. Secrets never appear: passwords are verifiers or names of
/// environment variables, and verifiers are masked too.
pub fn config(config: &Config, file: Option<&std::path::Path>) -> Report {
    let pairs = flat(config);
    let mut report = Report::new(columns::CONFIG.to_vec());
    for (key, value) in pairs {
        let value = if key.starts_with("admin.users.") && key.ends_with(".password") {
            "(SCRAM-SHA-256 verifier)".to_string()
        } else {
            value
        };
        let applies = if RESTART_KEYS.contains(&key.as_str()) {
            "restart"
        } else {
            "reload"
        };
        report.push(vec![
            Cell::text(key),
            Cell::text(value),
            Cell::text(applies),
        ]);
    }
    if let Some(file) = file {
        report
            .notices
            .push(format!("configuration file: {}", file.display()));
    }
    report
}

/// The DDL policy rules: the whole catalog, each with its default action
/// and the action in force under `policy.mode` and `[policy.rules]`
/// (scopes may change it per user, database or application).
pub fn rules(config: &Config) -> Report {
    let policy = &config.policy;
    let mut report = Report::new(columns::RULES.to_vec());
    for rule in crate::policy::catalog::RULES {
        report.push(vec![
            Cell::text(rule.id),
            Cell::text(policy.mode.scale(policy.configured(rule)).as_str()),
            Cell::text(rule.default.as_str()),
            Cell::text(rule.category.as_str()),
            Cell::text(rule.lock),
            Cell::text(rule.summary),
        ]);
    }
    report.notices.push(format!(
        "policy.mode = {}; [[policy.scope]] entries may change the mode per user, database or application_name",
        policy.mode.as_str()
    ));
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AdminUser;

    #[test]
    fn settings_flatten_and_verifiers_are_masked() {
        let mut c = Config::default();
        c.admin.users.push(AdminUser {
            name: "ops".into(),
            password: Some("SCRAM-SHA-256$4096:c2FsdA==$a:b".into()),
            password_env: None,
        });
        let r = config(&c, None);
        let get = |k: &str| {
            r.rows
                .iter()
                .find(|row| row[0] == Cell::text(k))
                .map(|row| (row[1].clone(), row[2].clone()))
        };
        assert_eq!(
            get("server.listen"),
            Some((Cell::text("127.0.0.1:6432"), Cell::text("restart")))
        );
        assert_eq!(get("usage.window").map(|v| v.1), Some(Cell::text("reload")));
        assert_eq!(
            get("admin.users.ops.password").map(|v| v.0),
            Some(Cell::text("(SCRAM-SHA-256 verifier)"))
        );
        assert!(!format!("{r:?}").contains("c2FsdA=="));
        let mut changed = c.clone();
        changed.usage.flush_interval.0 = std::time::Duration::from_secs(9);
        changed.usage.window.0 = std::time::Duration::from_secs(9);
        assert_eq!(restart_keys_changed(&c, &changed), ["usage.flush_interval"]);
    }

    #[test]
    fn rules_list_the_catalog_with_the_action_in_force() {
        let mut c = Config::default();
        c.policy
            .rules
            .insert("truncate-table".into(), crate::policy::Action::Warn);
        let r = rules(&c);
        assert_eq!(r.rows.len(), crate::policy::catalog::RULES.len());
        assert!(r.rows.len() >= 50);
        let row = |id: &str| {
            r.rows
                .iter()
                .find(|row| row[0] == Cell::text(id))
                .cloned()
                .unwrap_or_default()
        };
        let t = row("truncate-table");
        assert_eq!(
            &t[1..4],
            &[Cell::text("warn"), Cell::text("block"), Cell::text("proxy")]
        );
        assert_eq!(row("prefer-bigint")[3], Cell::text("advice"));
        c.policy.mode = crate::policy::Mode::Observe;
        assert_eq!(rules(&c).rows[0][1], Cell::text("allow"));
    }
}
