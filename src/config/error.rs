//! Configuration errors that name the file, the line and the key.

use std::fmt;
use std::path::PathBuf;
use thiserror::Error;

/// Why a configuration file was not accepted.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{file}: cannot read configuration: {source}")]
    Read {
        /// The file that was asked for.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key is missing, unknown, or has a bad value.
    #[error("{0}")]
    Invalid(Located),
}

/// A value that parsed but that the module using it refused (a certificate
/// file, a password verifier): the module names the key, `config` finds its
/// line. This keeps `config` free of the modules that build from its values.
#[derive(Debug, Error)]
#[error("{table}.{key}: {message}")]
pub struct KeyError {
    /// The table, e.g. `server` or `admin.users`.
    pub table: String,
    /// The key inside the table, e.g. `tls_cert`.
    pub key: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl KeyError {
    /// Builds the error for `table.key`.
    pub fn new(table: &str, key: &str, message: impl Into<String>) -> Self {
        KeyError {
            table: table.into(),
            key: key.into(),
            message: message.into(),
        }
    }
}

/// An error pinned to a place in the file.
#[derive(Debug)]
pub struct Located {
    /// The configuration file.
    pub file: PathBuf,
    /// 1-based line number, when known.
    pub line: Option<usize>,
    /// Dotted key, e.g. `server.listen`.
    pub key: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: ", self.file.display(), line)?,
            None => write!(f, "{}: ", self.file.display())?,
        }
        if !self.key.is_empty() {
            write!(f, "key `{}`: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Maps positions and keys of a TOML text to line numbers and dotted key paths.
///
/// The configuration is flat (tables of scalars and arrays of tables), so a
/// line scan is exact enough and works for errors that the TOML parser did not
/// raise itself, such as a certificate file that does not exist.
pub struct SourceMap<'a> {
    text: &'a str,
}

impl<'a> SourceMap<'a> {
    /// Wraps the text of a configuration file.
    pub fn new(text: &'a str) -> Self {
        SourceMap { text }
    }

    /// The 1-based line that contains byte offset `pos`.
    pub fn line_of(&self, pos: usize) -> usize {
        let pos = pos.min(self.text.len());
        self.text[..pos].bytes().filter(|&b| b == b'\n').count() + 1
    }

    /// The dotted key written on `line` (`table.key`), or the table name when
    /// the line is a table header.
    pub fn key_at_line(&self, line: usize) -> String {
        let mut table = String::new();
        for (i, raw) in self.text.lines().enumerate() {
            let text = strip_comment(raw).trim();
            if let Some(name) = table_header(text) {
                table = name.to_string();
                if i + 1 == line {
                    return table;
                }
            } else if i + 1 == line {
                let key = text
                    .split('=')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_matches('"');
                return join(&table, key);
            }
        }
        table
    }

    /// The line where `key` is set inside `[table]`, or else the table's
    /// header line, or `None` if neither is written.
    pub fn line_of_key(&self, table: &str, key: &str) -> Option<usize> {
        let mut current = String::new();
        let mut header = None;
        for (i, raw) in self.text.lines().enumerate() {
            let text = strip_comment(raw).trim();
            if let Some(name) = table_header(text) {
                current = name.to_string();
                if current == table {
                    header = Some(i + 1);
                }
                continue;
            }
            if current == table {
                let written = text
                    .split('=')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_matches('"');
                if text.contains('=') && written == key {
                    return Some(i + 1);
                }
            }
        }
        header
    }
}

fn join(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_string()
    } else {
        format!("{table}.{key}")
    }
}

fn table_header(line: &str) -> Option<&str> {
    let inner = line.strip_prefix('[')?.strip_suffix(']')?;
    Some(inner.trim_matches(|c| c == '[' || c == ']').trim())
}

fn strip_comment(line: &str) -> &str {
    // Good enough for this file: no `#` inside the quoted values we accept
    // except in paths, which are rare; a quoted `#` keeps the line intact.
    let mut in_str = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_str = !in_str,
            '#' if !in_str => return &line[..i],
            _ => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# top\n[server]\nlisten = \"x\" # c\n\n[upstream]\nport = 1\n";

    #[test]
    fn finds_keys_and_lines() {
        let map = SourceMap::new(TEXT);
        assert_eq!(map.key_at_line(3), "server.listen");
        assert_eq!(map.key_at_line(6), "upstream.port");
        assert_eq!(map.line_of_key("upstream", "port"), Some(6));
        assert_eq!(map.line_of_key("upstream", "host"), Some(5));
        assert_eq!(map.line_of_key("admin", "x"), None);
        assert_eq!(map.line_of(TEXT.find("port").unwrap()), 6);
    }
}
