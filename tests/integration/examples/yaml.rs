//! A minimal reader for the block-style YAML subset that `docker/compose.yml`
//! is written in: mappings, sequences of scalars, flow sequences of quoted
//! scalars, comments. Anything outside that subset (tabs, anchors, multi-line
//! scalars, inconsistent indentation, duplicate keys) is an error, so the
//! compose file stays plain enough for every YAML reader. No YAML crate:
//! `serde_yaml` is deprecated and a dev-dependency would be one more crate
//! to build and keep for a single 60-line file.

use std::collections::BTreeMap;

/// A YAML node of the subset.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `key: value` lines at one indentation.
    Map(BTreeMap<String, Node>),
    /// `- item` lines, or `[a, b]`.
    List(Vec<Node>),
    /// A plain or quoted scalar.
    Scalar(String),
}

impl Node {
    /// The value under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(m) => m.get(key),
            _ => None,
        }
    }

    /// The scalar's text.
    pub fn str(&self) -> Option<&str> {
        match self {
            Node::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The items of a sequence as text.
    pub fn strings(&self) -> Vec<String> {
        match self {
            Node::List(items) => items
                .iter()
                .filter_map(|i| i.str())
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Parses `text`; the error names the line.
pub fn parse(text: &str) -> Result<Node, String> {
    let mut lines = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        if raw.contains('\t') {
            return Err(format!("line {}: tab", n + 1));
        }
        let body = strip_comment(raw).trim_end();
        if body.trim().is_empty() {
            continue;
        }
        let indent = body.len() - body.trim_start().len();
        lines.push((n + 1, indent, body.trim_start().to_string()));
    }
    let mut pos = 0;
    let node = block(&lines, &mut pos, 0)?;
    match lines.get(pos) {
        None => Ok(node),
        Some((n, _, _)) => Err(format!("line {n}: unexpected indentation")),
    }
}

fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            ('#', None) if i == 0 || line[..i].ends_with(' ') => return &line[..i],
            _ => {}
        }
    }
    line
}

fn block(lines: &[(usize, usize, String)], pos: &mut usize, indent: usize) -> Result<Node, String> {
    let Some((_, first_indent, first)) = lines.get(*pos) else {
        return Ok(Node::Scalar(String::new()));
    };
    if *first_indent != indent {
        return Err(format!(
            "line {}: expected indentation {indent}",
            lines[*pos].0
        ));
    }
    if first.starts_with("- ") {
        let mut items = Vec::new();
        while let Some((n, i, text)) = lines.get(*pos) {
            if *i != indent || !text.starts_with("- ") {
                break;
            }
            items.push(scalar(&text[2..], *n)?);
            *pos += 1;
        }
        return Ok(Node::List(items));
    }
    let mut map = BTreeMap::new();
    while let Some((n, i, text)) = lines.get(*pos) {
        if *i < indent {
            break;
        }
        if *i > indent {
            return Err(format!("line {n}: unexpected indentation"));
        }
        let (key, rest) = text
            .split_once(':')
            .filter(|(_, r)| r.is_empty() || r.starts_with(' '))
            .ok_or(format!("line {n}: expected `key: value`"))?;
        let key = unquote(key.trim());
        *pos += 1;
        let value = if rest.trim().is_empty() {
            match lines.get(*pos) {
                Some((_, deeper, _)) if *deeper > indent => block(lines, pos, *deeper)?,
                _ => Node::Scalar(String::new()),
            }
        } else {
            scalar(rest.trim(), *n)?
        };
        if map.insert(key.clone(), value).is_some() {
            return Err(format!("line {n}: duplicate key {key}"));
        }
    }
    Ok(Node::Map(map))
}

fn scalar(text: &str, line: usize) -> Result<Node, String> {
    let text = text.trim();
    if text.starts_with(['&', '*', '|', '>', '{']) {
        return Err(format!("line {line}: outside the supported subset: {text}"));
    }
    if let Some(inner) = text.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or(format!("line {line}: unclosed ["))?;
        return Ok(Node::List(
            inner
                .split(',')
                .map(|s| Node::Scalar(unquote(s.trim())))
                .filter(|s| s != &Node::Scalar(String::new()))
                .collect(),
        ));
    }
    Ok(Node::Scalar(unquote(text)))
}

fn unquote(s: &str) -> String {
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner.to_string();
        }
    }
    s.to_string()
}

#[test]
fn the_subset_reader_reads_nesting_and_refuses_what_it_does_not_know() {
    let doc = parse("a:\n  b: 1 # note\n  c:\n    - \"x:1\"\n    - y\n  d: [\"p\", 'q']\ne: f\n")
        .unwrap();
    let a = doc.get("a").unwrap();
    assert_eq!(a.get("b").and_then(Node::str), Some("1"));
    assert_eq!(a.get("c").unwrap().strings(), ["x:1", "y"]);
    assert_eq!(a.get("d").unwrap().strings(), ["p", "q"]);
    assert_eq!(doc.get("e").and_then(Node::str), Some("f"));
    assert!(parse("a:\n\tb: 1\n").is_err());
    assert!(parse("a: 1\na: 2\n").is_err());
    assert!(parse("a:\n  b: 1\n   c: 2\n").is_err());
    assert!(parse("a: |\n  text\n").is_err());
}
