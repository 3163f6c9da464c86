//! Finding the PostgreSQL server binaries (DESIGN section 1).

use std::path::{Path, PathBuf};
use std::process::Command;

const INSTALL_HINT: &str =
    "PostgreSQL server binaries (initdb, pg_ctl, postgres) are needed for the \
integration tests. Install them (Debian/Ubuntu: `apt-get install postgresql`), or point \
DDLGUARD_PG_BIN at the folder that holds initdb.";

/// The folder holding `initdb`, `postgres`, `psql`, `pg_isready`, `pgbench`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DDLGUARD_PG_BIN") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("initdb").exists(),
            "DDLGUARD_PG_BIN={} holds no initdb. {INSTALL_HINT}",
            dir.display()
        );
        return dir;
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("bin")).collect();
        versions.sort_by_key(|p| {
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        });
        candidates.extend(versions.into_iter().rev());
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates
        .into_iter()
        .find(|d| has_server(d))
        .unwrap_or_else(|| panic!("no PostgreSQL server binaries found. {INSTALL_HINT}"))
}

fn has_server(dir: &Path) -> bool {
    ["initdb", "postgres", "psql", "pg_isready"]
        .iter()
        .all(|b| dir.join(b).exists())
}
