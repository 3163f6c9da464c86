//! What a lexical pass can prove about a read or write statement that
//! sqlparser cannot parse: the relations after FROM, JOIN, UPDATE, INSERT
//! INTO, DELETE FROM, MERGE INTO and USING (never columns), and the text
//! without the locking clauses sqlparser 0.64 does not read
//! (`FOR NO KEY UPDATE`, `FOR KEY SHARE`).

use super::classify::lex::{tokens, Tok};
use super::model::{Mode, RelationName, RelationUse};

/// Words that end a FROM item: never an alias.
const NOT_ALIAS: &[&str] = &[
    "where",
    "join",
    "inner",
    "left",
    "right",
    "full",
    "cross",
    "natural",
    "on",
    "using",
    "group",
    "order",
    "limit",
    "offset",
    "for",
    "union",
    "except",
    "intersect",
    "returning",
    "set",
    "window",
    "having",
    "fetch",
    "tablesample",
    "lateral",
    "values",
    "select",
    "default",
    "when",
    "then",
    "do",
    "as",
    "only",
];

/// A name at `toks[i..]`: (relation, tokens taken).
fn name_at(toks: &[Tok], i: usize) -> Option<(RelationName, usize)> {
    let first = toks.get(i)?.ident()?;
    if toks
        .get(i)
        .is_some_and(|t| t.word().is_some_and(|w| NOT_ALIAS.contains(&w)))
    {
        return None;
    }
    let mut parts = vec![first.to_string()];
    let mut j = i + 1;
    while toks.get(j).is_some_and(|t| t.is_punct("."))
        && toks.get(j + 1).and_then(Tok::ident).is_some()
    {
        parts.push(toks.get(j + 1)?.ident()?.to_string());
        j += 2;
    }
    let name = parts.pop()?;
    Some((
        RelationName {
            schema: parts.pop(),
            name,
        },
        j - i,
    ))
}

/// Names of the CTEs a statement defines (`name AS (`, `name (cols) AS (`).
fn cte_names(toks: &[Tok]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        let Some(name) = t.ident() else { continue };
        let mut j = i + 1;
        if toks.get(j).is_some_and(|t| t.is_punct("(")) {
            // Skip a column list.
            while j < toks.len() && !toks[j].is_punct(")") {
                j += 1;
            }
            j += 1;
        }
        let as_paren = toks.get(j).is_some_and(|t| t.is("as"))
            && toks
                .get(j + 1)
                .is_some_and(|t| t.is_punct("(") || t.is("materialized") || t.is("not"));
        if as_paren
            && i > 0
            && (toks[i - 1].is("with") || toks[i - 1].is("recursive") || toks[i - 1].is_punct(","))
        {
            out.push(name.to_string());
        }
    }
    out
}

/// True when a verb at `i` starts a statement or a CTE body.
fn starts_statement(toks: &[Tok], i: usize) -> bool {
    i == 0 || toks[i - 1].is_punct("(") || toks[i - 1].is_punct(")")
}

/// The relations a read or write provably uses. Names inside function
/// calls (`extract(x from y)`) and `IS DISTINCT FROM` are not relations;
/// CTE names are not either.
pub fn dml_relations(fingerprint: &str) -> Vec<RelationUse> {
    let toks: Vec<Tok> = tokens(fingerprint).into_iter().map(|(t, _, _)| t).collect();
    let ctes = cte_names(&toks);
    let mut out: Vec<RelationUse> = Vec::new();
    let mut push = |rel: RelationName, mode: Mode| {
        if rel.schema.is_none() && ctes.contains(&rel.name) {
            return;
        }
        let u = RelationUse {
            relation: rel,
            mode,
            all_columns: false,
        };
        if !out.contains(&u) {
            out.push(u);
        }
    };
    // COPY t ...: the table, and nothing after it (`FROM STDIN` is no table).
    if toks.first().is_some_and(|t| t.is("copy")) {
        if let Some((rel, _)) = name_at(&toks, 1) {
            let to = toks.iter().any(|t| t.is("to"));
            push(rel, if to { Mode::Read } else { Mode::Write });
            return out;
        }
    }
    // Per open parenthesis: does it hold a query (FROM counts inside)?
    let mut parens: Vec<bool> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        if t.is_punct("(") {
            let query = toks
                .get(i + 1)
                .is_some_and(|n| n.is("select") || n.is("with") || n.is("values") || n.is("table"));
            parens.push(query);
            i += 1;
            continue;
        }
        if t.is_punct(")") {
            parens.pop();
            i += 1;
            continue;
        }
        let in_query = parens.last().copied().unwrap_or(true);
        let word = t.word().unwrap_or("");
        let prev = if i > 0 { toks[i - 1].word() } else { None };
        let (mode, list, call_ok) = match word {
            "from" if in_query && prev == Some("delete") => (Mode::Write, false, false),
            "from" if in_query && prev != Some("distinct") => (Mode::Read, true, false),
            "join" if in_query => (Mode::Read, false, false),
            "using" if in_query => (Mode::Read, false, false),
            "update" if starts_statement(&toks, i) => (Mode::Write, false, false),
            "into" if matches!(prev, Some("insert" | "merge")) => (Mode::Write, false, true),
            _ => {
                i += 1;
                continue;
            }
        };
        let mut j = i + 1;
        loop {
            while toks.get(j).is_some_and(|t| t.is("only") || t.is("lateral")) {
                j += 1;
            }
            let Some((rel, n)) = name_at(&toks, j) else {
                break;
            };
            j += n;
            // `name(` after FROM is a function call; after INTO, columns.
            if toks.get(j).is_some_and(|t| t.is_punct("(")) && !call_ok {
                break;
            }
            // `ROWS FROM (...)` is a set of function calls.
            if rel.schema.is_none()
                && rel.name == "rows"
                && toks.get(j).is_some_and(|t| t.is("from"))
            {
                break;
            }
            push(rel, mode);
            if !list {
                break;
            }
            toks.get(j).is_some_and(|t| t.is_punct("*")).then(|| j += 1);
            if toks.get(j).is_some_and(|t| t.is("as")) {
                j += 1;
            }
            if toks
                .get(j)
                .and_then(Tok::word)
                .is_some_and(|w| !NOT_ALIAS.contains(&w))
                || matches!(toks.get(j), Some(Tok::Quoted(_)))
            {
                j += 1;
            }
            if !toks.get(j).is_some_and(|t| t.is_punct(",")) {
                break;
            }
            j += 1;
        }
        i += 1;
    }
    out
}

/// The text without its row-locking clauses (`FOR [NO KEY] UPDATE`, `FOR
/// [KEY] SHARE`, with `OF ...`, `NOWAIT`, `SKIP LOCKED`), when it has one
/// sqlparser 0.64 cannot read. A locking clause changes no column usage,
/// so the rest analyses exactly like the original.
pub fn without_locking_clauses(fingerprint: &str) -> Option<String> {
    let toks = tokens(fingerprint);
    let is = |k: usize, w: &str| toks.get(k).is_some_and(|(t, _, _)| t.is(w));
    let mut cut: Vec<(usize, usize)> = Vec::new();
    let mut unreadable = false;
    let mut i = 0;
    while i < toks.len() {
        if !is(i, "for") {
            i += 1;
            continue;
        }
        let len = if is(i + 1, "no") && is(i + 2, "key") && is(i + 3, "update") {
            unreadable = true;
            4
        } else if is(i + 1, "key") && is(i + 2, "share") {
            unreadable = true;
            3
        } else if is(i + 1, "update") || is(i + 1, "share") {
            2
        } else {
            i += 1;
            continue;
        };
        let start = toks[i].1;
        let mut j = i + len;
        if is(j, "of") {
            j += 1;
            while toks
                .get(j)
                .is_some_and(|(t, _, _)| t.ident().is_some() || t.is_punct(".") || t.is_punct(","))
            {
                j += 1;
            }
        }
        if is(j, "nowait") {
            j += 1;
        } else if is(j, "skip") && is(j + 1, "locked") {
            j += 2;
        }
        let end = toks.get(j - 1).map(|(_, _, e)| *e).unwrap_or(start);
        cut.push((start, end));
        i = j;
    }
    if !unreadable {
        return None;
    }
    let mut out = String::with_capacity(fingerprint.len());
    let mut at = 0;
    for (s, e) in cut {
        out.push_str(&fingerprint[at..s]);
        at = e;
    }
    out.push_str(&fingerprint[at..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fingerprint;

    fn rels(sql: &str) -> Vec<String> {
        dml_relations(&fingerprint(sql).text)
            .iter()
            .map(|u| format!("{}:{:?}", u.relation, u.mode))
            .collect()
    }

    #[test]
    fn proves_relations_of_reads_and_writes() {
        assert_eq!(
            rels("SELECT a FROM t JOIN app.u ON t.id = u.id FOR NO KEY UPDATE OF t"),
            vec!["t:Read", "app.u:Read"]
        );
        assert_eq!(
            rels("select * from a x, b as y, \"C\" where true"),
            vec!["a:Read", "b:Read", "C:Read"]
        );
        assert_eq!(
            rels("with c as (select * from t) update u set x = 1 from c where u.id = c.id"),
            vec!["t:Read", "u:Write"]
        );
        assert_eq!(
            rels("insert into t(a, b) select a, b from s"),
            vec!["t:Write", "s:Read"]
        );
        assert_eq!(
            rels("delete from only t using s where t.id = s.id"),
            vec!["t:Write", "s:Read"]
        );
        assert_eq!(
            rels(
                "select extract(year from ts), a is distinct from b from t, generate_series(1, 2)"
            ),
            vec!["t:Read"]
        );
        assert_eq!(rels("copy t from stdin"), vec!["t:Write"]);
        assert!(rels("select 1 for key share").is_empty());
    }

    #[test]
    fn a_lock_clause_sqlparser_cannot_read_still_gets_the_full_analysis() {
        use crate::analysis::analyze_uncached;
        let sql = "SELECT email FROM users WHERE id = 1 FOR NO KEY UPDATE OF users NOWAIT";
        let a = analyze_uncached(sql, fingerprint(sql));
        assert!(a.parsed, "analysed without the lock clause");
        let cols: Vec<&str> = a.columns.iter().map(|c| c.column.as_str()).collect();
        assert_eq!(cols, vec!["email", "id"]);
        assert!(
            a.relations.iter().all(|r| !r.all_columns),
            "named columns, no implicit use"
        );
        let sql = "SELECT * FROM users FOR KEY SHARE";
        let a = analyze_uncached(sql, fingerprint(sql));
        assert!(a.parsed);
        assert!(
            a.relations.iter().any(|r| r.all_columns),
            "SELECT * stays implicit"
        );
    }

    #[test]
    fn unparsed_reads_and_writes_record_provable_relations_only() {
        use crate::analysis::analyze_uncached;
        for (sql, want) in [
            (
                "DELETE FROM app.jobs WHERE CURRENT OF c",
                vec!["app.jobs:Write"],
            ),
            (
                "SELECT * FROM t, LATERAL ROWS FROM (f(1), g(2)) AS x",
                vec!["t:Read"],
            ),
        ] {
            let a = analyze_uncached(sql, fingerprint(sql));
            assert!(!a.parsed, "{sql} parses now: pick another unparsed case");
            let got: Vec<String> = a
                .relations
                .iter()
                .map(|u| format!("{}:{:?}", u.relation, u.mode))
                .collect();
            assert_eq!(got, want, "{sql}");
            assert!(a.columns.is_empty());
        }
    }

    #[test]
    fn strips_only_locking_clauses() {
        let fp =
            fingerprint("SELECT id FROM t WHERE id = 1 FOR NO KEY UPDATE OF t SKIP LOCKED").text;
        assert_eq!(
            without_locking_clauses(&fp).as_deref(),
            Some("select id from t where id = $1 ")
        );
        let fp = fingerprint("SELECT * FROM t FOR UPDATE").text;
        assert_eq!(without_locking_clauses(&fp), None, "parses as is");
    }
}
