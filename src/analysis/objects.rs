//! The functions, sequences and types a statement uses (issue 13: the
//! usage-aware rules for DROP/RENAME/SET SCHEMA of such objects need to know
//! who still calls a function, draws from a sequence or casts to a type).
//!
//! Every function call is kept (built-ins too, except those qualified with
//! `pg_catalog`): the policy only ever matches the object being dropped, so
//! `count` or `now` cost a few bytes per shape and never a false finding.
//! Sequence names come from the literal argument of `nextval`, `currval` and
//! `setval`, so the text walked must be the raw SQL, not its fingerprint.

use super::extract::relation_name;
use super::model::{ObjectUse, ObjectUseKind, RelationName};
use sqlparser::ast::{
    DataType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Statement,
    TableFactor, Value, Visit, Visitor,
};
use std::collections::BTreeSet;
use std::ops::ControlFlow;

/// The objects `statements` use, sorted and without repeats.
pub fn objects(statements: &[Statement]) -> Vec<ObjectUse> {
    let mut c = Collector::default();
    for s in statements {
        let _ = s.visit(&mut c);
    }
    c.0.into_iter().collect()
}

#[derive(Default)]
struct Collector(BTreeSet<ObjectUse>);

impl Collector {
    fn add(&mut self, kind: ObjectUseKind, name: RelationName) {
        if name.name.is_empty() || name.schema.as_deref() == Some("pg_catalog") {
            return;
        }
        self.0.insert(ObjectUse { kind, name });
    }

    fn function(&mut self, f: &Function) {
        let name = relation_name(&f.name);
        if name.schema.is_none() || name.schema.as_deref() == Some("pg_catalog") {
            let takes_sequence = matches!(name.name.as_str(), "nextval" | "currval" | "setval");
            if takes_sequence {
                if let FunctionArguments::List(list) = &f.args {
                    if let Some(seq) = list.args.first().and_then(sequence_argument) {
                        self.add(ObjectUseKind::Sequence, seq);
                    }
                }
            }
        }
        self.add(ObjectUseKind::Function, name);
    }
}

impl Visitor for Collector {
    type Break = ();

    fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
        if let Statement::Call(f) = s {
            self.function(f);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        match t {
            // `FROM f(1)`: sqlparser reads a set-returning function as a
            // table with arguments.
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => {
                self.add(ObjectUseKind::Function, relation_name(name));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        match e {
            Expr::Function(f) => self.function(f),
            Expr::Cast {
                data_type: DataType::Custom(name, _),
                ..
            } => self.add(ObjectUseKind::Type, relation_name(name)),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// The sequence a `nextval('s')` argument names: a string literal,
/// possibly cast to `regclass`; a parameter or an expression names none.
fn sequence_argument(arg: &FunctionArg) -> Option<RelationName> {
    let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = arg else {
        return None;
    };
    let mut e = e;
    while let Expr::Cast { expr, .. } | Expr::Nested(expr) = e {
        e = expr;
    }
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => regclass_name(s),
            _ => None,
        },
        _ => None,
    }
}

/// Reads a `regclass` text as Postgres does: dot-separated identifiers,
/// unquoted ones folded to lower case, `"..."` kept (with `""` as a quote).
pub fn regclass_name(text: &str) -> Option<RelationName> {
    let mut parts: Vec<String> = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                part.extend(c.to_lowercase());
                chars.next();
            }
            part = part.trim().to_string();
        }
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        match chars.next() {
            None => break,
            Some('.') => continue,
            Some(_) => return None,
        }
    }
    let name = parts.pop()?;
    Some(RelationName {
        schema: parts.pop(),
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn uses(sql: &str) -> Vec<(ObjectUseKind, String)> {
        let parsed = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("test SQL parses");
        objects(&parsed)
            .into_iter()
            .map(|o| (o.kind, o.name.to_string()))
            .collect()
    }

    fn has(sql: &str, kind: ObjectUseKind, name: &str) -> bool {
        uses(sql).contains(&(kind, name.to_string()))
    }

    use ObjectUseKind::{Function, Sequence, Type};

    #[test]
    fn functions_are_kept_folded_and_qualified_as_written() {
        assert!(has("SELECT Calc_Total(1)", Function, "calc_total"));
        assert!(has("SELECT billing.Calc(1)", Function, "billing.calc"));
        assert!(has(
            r#"SELECT "Billing"."Calc"(1)"#,
            Function,
            "Billing.Calc"
        ));
        assert!(has("SELECT * FROM report_rows(3)", Function, "report_rows"));
        assert!(has("CALL archive_old(30)", Function, "archive_old"));
        assert!(has(
            "UPDATE t SET total = add_tax(total) WHERE id = 1",
            Function,
            "add_tax"
        ));
        assert!(has(
            "SELECT (SELECT inner_f(x) FROM t) FROM u",
            Function,
            "inner_f"
        ));
    }

    #[test]
    fn pg_catalog_functions_are_not_kept() {
        assert!(uses("SELECT pg_catalog.now()").is_empty());
    }

    #[test]
    fn nextval_names_its_sequence_from_the_literal() {
        assert!(has("SELECT nextval('order_seq')", Sequence, "order_seq"));
        assert!(has(
            "SELECT nextval('Shop.Order_Seq')",
            Sequence,
            "shop.order_seq"
        ));
        assert!(has(
            "INSERT INTO t (id) VALUES (nextval('s.ids'::regclass))",
            Sequence,
            "s.ids"
        ));
        assert!(has(r#"SELECT currval('"Odd"')"#, Sequence, "Odd"));
        assert!(has("SELECT setval('ids', 42, true)", Sequence, "ids"));
        assert!(
            !uses("SELECT nextval($1)")
                .iter()
                .any(|(k, _)| *k == Sequence),
            "a parameter names no sequence"
        );
    }

    #[test]
    fn casts_name_user_types_only() {
        assert!(has("SELECT x::mood FROM t", Type, "mood"));
        assert!(has("SELECT CAST(x AS app.Mood) FROM t", Type, "app.mood"));
        assert!(!uses("SELECT x::int, y::text, z::timestamptz FROM t")
            .iter()
            .any(|(k, _)| *k == Type));
    }

    #[test]
    fn literals_and_columns_are_not_objects() {
        let found =
            uses("SELECT 'f(1)', 'nextval(''s'')', mood, nextval FROM t WHERE c = 'x::mood'");
        assert!(found.is_empty(), "{found:?}");
        assert!(!has("SELECT lower(name) FROM t", Function, "name"));
        assert!(!has("SELECT lower(name) FROM t", Sequence, "name"));
    }

    #[test]
    fn the_analysis_reads_the_sequence_from_the_raw_text_not_the_fingerprint() {
        let a = crate::analysis::Analyzer::new(16).analyze("SELECT nextval('shop.ids')");
        assert!(a.fingerprint.text.contains("$1"), "{}", a.fingerprint.text);
        assert!(a.objects.contains(&ObjectUse {
            kind: Sequence,
            name: RelationName {
                schema: Some("shop".into()),
                name: "ids".into(),
            },
        }));
    }

    #[test]
    fn regclass_text_is_read_as_postgres_reads_it() {
        let n = |s: &str| regclass_name(s).map(|r| r.to_string());
        assert_eq!(n("A.B"), Some("a.b".into()));
        assert_eq!(n(r#""A"."B""c""#), Some(r#"A.B"c"#.into()));
        assert_eq!(n(""), None);
        assert_eq!(n("a..b"), None);
        assert_eq!(n(r#""open"#), None);
    }
}
