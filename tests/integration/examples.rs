//! What an operator copies: the example configurations, the container files,
//! the systemd unit and the configuration reference, each checked against
//! the real binary or the config types so that they cannot drift.

mod configuration_doc;
mod docker;
mod yaml;

use crate::support::certs::TestCerts;
use crate::support::BinProxy;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh scratch folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ddlguard-test-{}-examples-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `ddlguard check-config --config FILE`.
pub fn check_config(file: &Path) -> Output {
    Command::new(BinProxy::exe())
        .args(["check-config", "--config"])
        .arg(file)
        .env_remove("DDLGUARD_CONFIG")
        .output()
        .expect("run ddlguard check-config")
}

/// Panics with the binary's output unless `check-config` accepted `file`;
/// returns the effective settings it printed.
pub fn assert_valid(file: &Path) -> String {
    let out = check_config(file);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "check-config refused {}: {}{}",
        file.display(),
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn every_example_configuration_passes_check_config() {
    let dir = repo().join("examples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "fleet-postgres-store.toml",
            "observe-rollout.toml",
            "single-sqlite.toml",
            "tls-both-legs.toml"
        ],
        "each example is listed here (and in README) and checked"
    );
    for name in &names {
        // Each runs from a folder of its own, as an operator would copy it:
        // relative paths (the SQLite store, the TLS files) resolve there.
        let work = scratch(name.trim_end_matches(".toml"));
        let file = work.join(name);
        std::fs::copy(dir.join(name), &file).unwrap();
        if name.starts_with("tls-") {
            let certs = TestCerts::generate(&work.join("tls"), "localhost");
            std::fs::copy(&certs.ca, work.join("tls/root.crt")).unwrap();
        }
        let settings = assert_valid(&file);
        let effective: toml::Value = toml::from_str(
            &settings
                .lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .unwrap();
        let get = |path: &str| {
            path.split('.')
                .try_fold(&effective, |v, k| v.get(k))
                .map(|v| v.to_string())
        };
        match name.as_str() {
            "fleet-postgres-store.toml" => {
                let store = get("usage.store").unwrap_or_default();
                assert!(store.starts_with("\"postgres://"), "{store}");
                assert!(!settings.contains("change-me"), "the password is masked");
            }
            "observe-rollout.toml" => {
                assert_eq!(get("policy.mode").as_deref(), Some("\"observe\""))
            }
            "single-sqlite.toml" => {
                let store = get("usage.store").unwrap_or_default();
                assert!(store.contains("sqlite:") && store.contains(&*work.to_string_lossy()));
            }
            "tls-both-legs.toml" => {
                assert!(get("server.tls_cert").is_some());
                assert_eq!(get("upstream.tls").as_deref(), Some("\"verify-full\""));
            }
            _ => unreachable!(),
        }
    }
}

#[test]
fn the_tls_example_is_refused_without_its_certificates() {
    // The check above is not vacuous: check-config reads the PEM files.
    let work = scratch("tls-missing");
    let file = work.join("tls-both-legs.toml");
    std::fs::copy(repo().join("examples/tls-both-legs.toml"), &file).unwrap();
    let out = check_config(&file);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.tls_cert"), "{err}");
}

#[test]
fn the_systemd_unit_reloads_with_sighup_and_runs_sandboxed() {
    let unit = std::fs::read_to_string(repo().join("packaging/ddlguard.service")).unwrap();
    let value = |key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(value("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    assert_eq!(
        value("ExecStart"),
        ["/usr/local/bin/ddlguard serve --config /etc/ddlguard/proxy.toml"]
    );
    assert_eq!(value("RestartPreventExitStatus"), ["2"], "2 = bad config");
    for (key, want) in [
        ("User", "ddlguard"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("StateDirectory", "ddlguard"),
        ("MemoryDenyWriteExecute", "yes"),
    ] {
        assert_eq!(value(key), [want], "{key}");
    }
}
