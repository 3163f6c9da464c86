//! The files of a run: files as given, directories walked for `*.sql` in
//! name order (the order migration tools apply them).

use super::error::LintError;
use std::path::{Path, PathBuf};

/// The files to lint, in the order given; each directory's `*.sql` files
/// (recursively) sorted by path.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LintError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LintError::Missing(p.clone()),
            _ => LintError::Io {
                path: p.clone(),
                source: e,
            },
        })?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found)?;
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LintError> {
    let io = |source| LintError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "sql") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_give_their_sql_files_in_name_order() {
        let dir = std::env::temp_dir().join(format!("ddlguard-lint-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for f in ["002_b.sql", "001_a.sql", "notes.txt", "sub/003_c.sql"] {
            std::fs::write(dir.join(f), "select 1;").unwrap();
        }
        let got = collect(std::slice::from_ref(&dir)).unwrap();
        let names: Vec<String> = got
            .iter()
            .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["001_a.sql", "002_b.sql", "sub/003_c.sql"]);
        assert!(matches!(
            collect(&[dir.join("missing.sql")]),
            Err(LintError::Missing(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
