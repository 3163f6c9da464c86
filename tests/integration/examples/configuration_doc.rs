//! `docs/configuration.md` against the config types: every key the
//! configuration serializes is documented with its default and whether a
//! reload (SIGHUP, `RELOAD`) applies it, as `SHOW CONFIG` says; every
//! documented key exists; every documented default parses.

use super::repo;
use ddlguard::admin::report::{self, Cell};
use ddlguard::config::{AdminUser, Config, Scope};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One documented key.
#[derive(Debug)]
struct DocRow {
    key: String,
    kind: String,
    default: String,
    applies: String,
}

/// The `| `key` | type | default | reload/restart | meaning |` rows.
fn doc_rows(text: &str) -> Vec<DocRow> {
    text.lines()
        // Key rows: a dotted key in the first cell (the environment table has none).
        .filter(|l| l.starts_with("| `") && l.split(" | ").next().is_some_and(|k| k.contains('.')))
        .map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect();
            assert!(cells.len() >= 5, "a row needs 5 cells: {l}");
            DocRow {
                key: cells[0].clone(),
                kind: cells[1].clone(),
                default: cells[2].clone(),
                applies: cells[3].clone(),
            }
        })
        .collect()
}

/// Every optional key set, one admin user, one rule override, one scope.
fn full_config() -> Config {
    let mut c = Config::default();
    c.server.tls_cert = Some(PathBuf::from("server.crt"));
    c.server.tls_key = Some(PathBuf::from("server.key"));
    c.upstream.ca_file = Some(PathBuf::from("root.crt"));
    c.upstream.user = Some("ddlguard".into());
    c.upstream.password_env = Some("DDLGUARD_UPSTREAM_PASSWORD".into());
    c.admin.http_token_env = Some("DDLGUARD_HTTP_TOKEN".into());
    c.admin.users.push(AdminUser {
        name: "admin".into(),
        password: Some("SCRAM-SHA-256$4096:c2FsdA==$a:b".into()),
        password_env: Some("DDLGUARD_ADMIN_PASSWORD".into()),
    });
    c.policy
        .rules
        .insert("truncate-table".into(), ddlguard::policy::Action::Warn);
    let d = |ms| ddlguard::config::HumanDuration(std::time::Duration::from_millis(ms));
    c.policy.preflight_min_age = Some(d(1000));
    c.policy.lock_timeout_schedule = vec![d(100), d(500)];
    c.policy.terminate_idle_blockers_after = Some(d(30_000));
    c.policy.scope.push(Scope {
        user: Some("migrator".into()),
        database: Some("app".into()),
        application_name: Some("rails".into()),
        mode: ddlguard::policy::Mode::Enforce,
    });
    c
}

/// Keys as documented: `admin.users[].name`, `policy.rules.<rule-id>`.
fn flatten(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, toml::Value>) {
    match value {
        toml::Value::Table(t) if prefix == "policy.rules" => {
            if let Some(v) = t.values().next() {
                out.insert("policy.rules.<rule-id>".into(), v.clone());
            }
        }
        toml::Value::Table(t) => {
            let under = |k: &str| {
                let parts = [prefix, k];
                parts
                    .iter()
                    .filter(|p| !p.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(".")
            };
            t.iter().for_each(|(k, v)| flatten(&under(k), v, out));
        }
        toml::Value::Array(items) if items.first().is_some_and(toml::Value::is_table) => {
            flatten(&format!("{prefix}[]"), &items[0], out);
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

fn flat(config: &Config) -> BTreeMap<String, toml::Value> {
    let mut out = BTreeMap::new();
    flatten("", &toml::Value::try_from(config).unwrap(), &mut out);
    out
}

/// "reload" or "restart", as SHOW CONFIG reports the key.
fn applies(show_config: &report::Report, key: &str) -> String {
    let wanted = |k: &str| {
        // An array entry is one row per field under the entry's name (the
        // name itself has no row); all fields of an entry apply alike.
        if let Some((array, _)) = key.split_once("[].") {
            k.starts_with(&format!("{array}."))
        } else if let Some(table) = key.strip_suffix(".<rule-id>") {
            k.starts_with(&format!("{table}."))
        } else {
            k == key
        }
    };
    show_config
        .rows
        .iter()
        .find(|row| matches!(&row[0], Cell::Text(k) if wanted(k)))
        .map(|row| match &row[2] {
            Cell::Text(a) => a.clone(),
            other => format!("{other:?}"),
        })
        .unwrap_or_else(|| panic!("SHOW CONFIG has no row for {key}"))
}

#[test]
fn the_configuration_reference_matches_the_config_types() {
    let text = std::fs::read_to_string(repo().join("docs/configuration.md")).unwrap();
    let rows = doc_rows(&text);
    let full = full_config();
    let keys = flat(&full);
    let defaults = flat(&Config::default());
    let show = report::config(&full, None);
    let mut expected = String::new();
    for (key, value) in &keys {
        let kind = match value {
            toml::Value::Integer(_) => "integer",
            toml::Value::Boolean(_) => "boolean",
            _ => "string",
        };
        let default = defaults
            .get(key)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "(none)".into());
        expected.push_str(&format!(
            "| `{key}` | {kind} | {default} | {} | ... |\n",
            applies(&show, key)
        ));
    }
    let documented: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    let missing: Vec<&String> = keys
        .keys()
        .filter(|k| !documented.contains(&k.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "undocumented keys {missing:?}; the rows the types give:\n{expected}"
    );
    for row in &rows {
        let value = keys.get(&row.key).unwrap_or_else(|| {
            panic!(
                "docs/configuration.md documents {} which the config does not have",
                row.key
            )
        });
        assert_eq!(
            row.applies,
            applies(&show, &row.key),
            "{}: reload or restart",
            row.key
        );
        match defaults.get(&row.key) {
            // Compared as values: "24h" documents the default of 1 day.
            Some(default) => assert_eq!(
                Some(default),
                parse_alone(&row.key, &row.default).as_ref(),
                "{}: documented default {} is not the default of the config types ({default})",
                row.key,
                row.default
            ),
            None => assert!(
                row.default == "(none)" || row.default == "(required)",
                "{}: no default in the types, documented as {}",
                row.key,
                row.default
            ),
        }
        match value {
            toml::Value::Integer(_) => assert_eq!(row.kind, "integer", "{}", row.key),
            toml::Value::Boolean(_) => assert_eq!(row.kind, "boolean", "{}", row.key),
            _ => assert!(
                row.kind != "integer" && row.kind != "boolean",
                "{}: {}",
                row.key,
                row.kind
            ),
        }
    }
}

/// The value of `key` after parsing a file that sets only `key = value`.
fn parse_alone(key: &str, value: &str) -> Option<toml::Value> {
    let (table, field) = key.rsplit_once('.')?;
    let snippet = format!("[{table}]\n{field} = {value}\n");
    match Config::parse(Path::new("configuration.md"), &snippet) {
        Ok(config) => flat(&config).remove(key),
        Err(e) => panic!("documented default of {key} does not parse: {e}"),
    }
}
