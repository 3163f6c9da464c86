//! The grammar of the classifier: leading keywords, object kind, names,
//! flags. A small cursor over the tokens of one statement; nothing here
//! fails, an unexpected token only ends what can be proven.

use super::lex::Tok;
use super::{Classified, ObjectKind, ObjectName};
use crate::analysis::model::StatementKind;

/// A position in the tokens of one statement.
struct Cursor<'a> {
    toks: &'a [Tok],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<&'a Tok> {
        self.toks.get(self.at)
    }

    fn peek_at(&self, n: usize) -> Option<&'a Tok> {
        self.toks.get(self.at + n)
    }

    fn peek_is(&self, w: &str) -> bool {
        self.peek().is_some_and(|t| t.is(w))
    }

    fn rest(&self) -> &'a [Tok] {
        self.toks.get(self.at..).unwrap_or(&[])
    }

    /// Consumes the word `w` if it is next.
    fn eat(&mut self, w: &str) -> bool {
        let hit = self.peek_is(w);
        if hit {
            self.at += 1;
        }
        hit
    }

    /// Consumes the words `ws` if they are all next.
    fn eat_all(&mut self, ws: &[&str]) -> bool {
        let hit = ws
            .iter()
            .enumerate()
            .all(|(i, w)| self.peek_at(i).is_some_and(|t| t.is(w)));
        if hit {
            self.at += ws.len();
        }
        hit
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        let hit = self.peek().is_some_and(|t| t.is_punct(p));
        if hit {
            self.at += 1;
        }
        hit
    }

    /// Consumes a parenthesized group if one is next.
    fn skip_parens(&mut self) -> bool {
        if !self.peek().is_some_and(|t| t.is_punct("(")) {
            return false;
        }
        let mut depth = 0i32;
        while let Some(t) = self.peek() {
            self.at += 1;
            if t.is_punct("(") {
                depth += 1;
            } else if t.is_punct(")") {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
        }
        true
    }

    /// `IF EXISTS` / `IF NOT EXISTS`, into the flags.
    fn if_exists(&mut self, c: &mut Classified) {
        if self.eat_all(&["if", "not", "exists"]) {
            c.if_not_exists = true;
        } else if self.eat_all(&["if", "exists"]) {
            c.if_exists = true;
        }
    }

    /// The dotted identifier parts at the cursor (`a`, `s.a`, `db.s.a`).
    /// Literals, placeholders and punctuation are never names.
    fn parts(&mut self) -> Vec<String> {
        let Some(first) = self.peek().and_then(Tok::ident) else {
            return Vec::new();
        };
        let mut parts = vec![first.to_string()];
        self.at += 1;
        while let (Some(dot), Some(next)) = (self.peek(), self.peek_at(1).and_then(Tok::ident)) {
            if !dot.is_punct(".") {
                break;
            }
            parts.push(next.to_string());
            self.at += 2;
        }
        parts
    }

    /// A possibly qualified name (the last two parts are kept).
    fn name(&mut self) -> Option<ObjectName> {
        let mut parts = self.parts();
        let name = parts.pop()?;
        Some(ObjectName {
            schema: parts.pop(),
            name,
        })
    }

    /// An operator name: `+`, `s.+`, `===`.
    fn operator_name(&mut self) -> Option<ObjectName> {
        let mut schema = None;
        if self.peek().and_then(Tok::ident).is_some()
            && self.peek_at(1).is_some_and(|t| t.is_punct("."))
        {
            schema = self.peek().and_then(Tok::ident).map(str::to_string);
            self.at += 2;
        }
        match self.peek()? {
            Tok::Punct(op) if !matches!(op.as_str(), "(" | ")" | "," | ";" | ".") => {
                self.at += 1;
                Some(ObjectName {
                    schema,
                    name: op.clone(),
                })
            }
            _ => None,
        }
    }

    /// A comma-separated list of names, each optionally followed by `*`
    /// (inheritance) or a parenthesized list (arguments, columns).
    fn names(&mut self, object: ObjectKind) -> Vec<ObjectName> {
        let mut out = Vec::new();
        loop {
            self.eat("only");
            let n = if object == ObjectKind::Operator {
                self.operator_name()
            } else {
                self.name()
            };
            let Some(n) = n else { break };
            out.push(n);
            self.eat_punct("*");
            self.skip_parens();
            if !self.eat_punct(",") {
                break;
            }
        }
        out
    }

    /// Moves past the next `word` at parenthesis depth 0; false (and the
    /// cursor unchanged) when there is none.
    fn seek(&mut self, word: &str) -> bool {
        let mut depth = 0i32;
        for (i, t) in self.rest().iter().enumerate() {
            if t.is_punct("(") {
                depth += 1;
            } else if t.is_punct(")") {
                depth -= 1;
            } else if depth == 0 && t.is(word) {
                self.at += i + 1;
                return true;
            }
        }
        false
    }
}

/// True when some word of `toks` at depth 0 is `CASCADE` (a foreign key's
/// `ON DELETE CASCADE` / `ON UPDATE CASCADE` does not count).
fn has_cascade(toks: &[Tok]) -> bool {
    let mut depth = 0i32;
    toks.iter().enumerate().any(|(i, t)| {
        if t.is_punct("(") {
            depth += 1;
        } else if t.is_punct(")") {
            depth -= 1;
        }
        depth == 0
            && t.is("cascade")
            && !(i > 0 && (toks[i - 1].is("delete") || toks[i - 1].is("update")))
    })
}

/// True when a data-changing verb starts a statement or a CTE body
/// somewhere in `toks` (`FOR UPDATE` and `DO UPDATE` do not count).
fn writes(toks: &[Tok]) -> bool {
    toks.iter().enumerate().any(|(i, t)| {
        matches!(t.word(), Some("insert" | "update" | "delete" | "merge"))
            && (i == 0 || toks[i - 1].is_punct("(") || toks[i - 1].is_punct(")"))
    })
}

/// Sets `command` to `verb object` (or `verb` alone for no object).
fn command(c: &mut Classified, verb: &str) {
    c.command = if c.object == ObjectKind::None {
        verb.to_string()
    } else {
        format!("{verb} {}", c.object.as_str())
    };
}

/// Reads the object keywords at the cursor into `c.object`.
fn object(cur: &mut Cursor, c: &mut Classified) {
    if let Some((kind, n)) = ObjectKind::from_words(cur.rest()) {
        c.object = kind;
        cur.at += n;
    }
}

/// Classifies one statement's tokens.
pub fn statement(toks: &[Tok]) -> Classified {
    let mut cur = Cursor { toks, at: 0 };
    let mut c = Classified::default();
    let first = cur.peek().and_then(Tok::word).unwrap_or("").to_string();
    cur.at += 1;
    c.concurrently = toks.iter().any(|t| t.is("concurrently"));
    match first.as_str() {
        "create" => create(&mut cur, &mut c),
        "alter" => alter(&mut cur, &mut c),
        "drop" => drop(&mut cur, &mut c),
        "comment" => {
            cur.eat("on");
            on_object(&mut cur, &mut c);
            c.kind = StatementKind::Ddl;
            command(&mut c, "comment on");
        }
        "security" => {
            cur.eat("label");
            if cur.eat("for") {
                cur.name();
            }
            cur.eat("on");
            on_object(&mut cur, &mut c);
            c.kind = StatementKind::Ddl;
            command(&mut c, "security label on");
        }
        "import" => {
            // IMPORT FOREIGN SCHEMA remote ... INTO local: creates foreign tables.
            c.kind = StatementKind::Ddl;
            c.object = ObjectKind::ForeignTable;
            c.command = "import foreign schema".into();
            c.names.clear();
        }
        "grant" | "revoke" => privilege(&mut cur, &mut c, &first),
        "reassign" => {
            c.kind = StatementKind::Privilege;
            c.object = ObjectKind::Owned;
            c.command = "reassign owned".into();
        }
        "reindex" => {
            cur.skip_parens();
            object(&mut cur, &mut c);
            cur.eat("concurrently");
            c.names = cur.names(c.object);
            c.kind = StatementKind::Maintenance;
            command(&mut c, "reindex");
        }
        "cluster" => {
            cur.eat("verbose");
            cur.skip_parens();
            cur.eat("verbose");
            if let Some(first) = cur.name() {
                // Pre-8.3 form `CLUSTER index ON table`.
                let table = if cur.eat("on") { cur.name() } else { None };
                c.names = vec![table.unwrap_or(first)];
                c.object = ObjectKind::Table;
            }
            c.kind = StatementKind::Maintenance;
            c.command = "cluster".into();
        }
        "vacuum" | "analyze" | "analyse" => {
            while cur.eat("full")
                || cur.eat("freeze")
                || cur.eat("verbose")
                || cur.eat("analyze")
                || cur.eat("analyse")
                || cur.skip_parens()
            {}
            c.names = cur.names(ObjectKind::Table);
            if !c.names.is_empty() {
                c.object = ObjectKind::Table;
            }
            c.kind = StatementKind::Maintenance;
            c.command = if first == "vacuum" {
                "vacuum"
            } else {
                "analyze"
            }
            .into();
        }
        "refresh" => {
            object(&mut cur, &mut c);
            cur.eat("concurrently");
            c.names = cur.name().into_iter().collect();
            c.kind = StatementKind::Maintenance;
            command(&mut c, "refresh");
        }
        "truncate" | "lock" => {
            cur.eat("table");
            c.object = ObjectKind::Table;
            c.names = cur.names(ObjectKind::Table);
            c.cascade = first == "truncate" && has_cascade(cur.rest());
            c.kind = if first == "truncate" {
                StatementKind::Write
            } else {
                StatementKind::Utility
            };
            c.command = first.clone();
        }
        "table" => {
            c.object = ObjectKind::Table;
            c.names = cur.names(ObjectKind::Table);
            c.kind = StatementKind::Read;
            c.command = first.clone();
        }
        "select" | "values" => {
            c.kind = if writes(toks) {
                StatementKind::Write
            } else {
                StatementKind::Read
            };
            c.command = first.clone();
        }
        "with" => {
            c.kind = if writes(toks) {
                StatementKind::Write
            } else {
                StatementKind::Read
            };
            c.command = first.clone();
        }
        "insert" | "update" | "delete" | "merge" => {
            c.kind = StatementKind::Write;
            c.command = first.clone();
        }
        "copy" => {
            let to = toks.iter().any(|t| t.is("to")) && !toks.iter().any(|t| t.is("from"));
            c.kind = if to {
                StatementKind::Read
            } else {
                StatementKind::Write
            };
            c.command = first.clone();
        }
        "begin" | "start" | "commit" | "end" | "rollback" | "abort" | "savepoint" | "release" => {
            c.kind = StatementKind::Transaction;
            c.command = first.clone();
        }
        "prepare" if cur.peek_is("transaction") => {
            c.kind = StatementKind::Transaction;
            c.command = "prepare transaction".into();
        }
        "explain" => {
            // EXPLAIN ANALYZE runs the statement: it is what it explains.
            let analyze = cur.eat("analyze") || cur.eat("analyse") || {
                let opts = cur.at;
                cur.skip_parens();
                toks[opts..cur.at]
                    .iter()
                    .any(|t| t.is("analyze") || t.is("analyse"))
            };
            cur.eat("verbose");
            if analyze {
                let inner = statement(cur.rest());
                return Classified {
                    kind: inner.kind,
                    ..inner
                };
            }
            c.command = first.clone();
        }
        _ => c.command = first.clone(),
    }
    c
}

/// `CREATE [OR REPLACE] [TEMP] [UNLOGGED] [UNIQUE] ... object ...`
fn create(cur: &mut Cursor, c: &mut Classified) {
    loop {
        if cur.eat_all(&["or", "replace"]) {
            c.or_replace = true;
        } else if cur.eat("temp") || cur.eat("temporary") {
            c.temporary = true;
        } else if !(cur.eat("global")
            || cur.eat("local")
            || cur.eat("unlogged")
            || cur.eat("unique")
            || cur.eat("recursive")
            || cur.eat("trusted")
            || cur.eat("default"))
        {
            break;
        }
    }
    object(cur, c);
    c.kind = kind_of(c.object);
    command(c, "create");
    cur.eat("concurrently");
    cur.if_exists(c);
    match c.object {
        ObjectKind::Index => {
            if !cur.peek_is("on") {
                c.names = cur.name().into_iter().collect();
            }
            if cur.eat("on") {
                cur.eat("only");
                c.on = cur.name();
            }
        }
        ObjectKind::Trigger | ObjectKind::Policy => {
            c.names = cur.name().into_iter().collect();
            if cur.seek("on") {
                cur.eat("only");
                c.on = cur.name();
            }
        }
        ObjectKind::Rule => {
            c.names = cur.name().into_iter().collect();
            if cur.seek("to") {
                c.on = cur.name();
            }
        }
        ObjectKind::Schema => {
            if cur.eat("authorization") {
                // The schema is named after the role.
                c.names = cur.name().into_iter().collect();
            } else {
                c.names = cur.name().into_iter().collect();
            }
        }
        ObjectKind::Operator => c.names = cur.operator_name().into_iter().collect(),
        ObjectKind::Cast | ObjectKind::Transform | ObjectKind::UserMapping => {}
        _ => c.names = cur.name().into_iter().collect(),
    }
}

/// `ALTER object [IF EXISTS] [ONLY] name [ON table] action ...`
fn alter(cur: &mut Cursor, c: &mut Classified) {
    object(cur, c);
    c.kind = kind_of(c.object);
    command(c, "alter");
    match c.object {
        ObjectKind::DefaultPrivileges => {
            c.kind = StatementKind::Privilege;
            return;
        }
        ObjectKind::System => {
            c.kind = StatementKind::Utility;
            return;
        }
        ObjectKind::Cast | ObjectKind::Transform | ObjectKind::UserMapping => return,
        _ => {}
    }
    cur.if_exists(c);
    if cur.peek_is("all") && cur.peek_at(1).is_some_and(|t| t.is("in")) {
        // ALTER TABLE ALL IN TABLESPACE a [OWNED BY r] SET TABLESPACE b:
        // no one name.
        cur.at += 2;
        cur.eat("tablespace");
        cur.name();
        if cur.eat_all(&["owned", "by"]) {
            cur.names(ObjectKind::Role);
        }
    } else {
        cur.eat("only");
        c.names = if c.object == ObjectKind::Operator {
            cur.operator_name().into_iter().collect()
        } else {
            cur.name().into_iter().collect()
        };
        cur.eat_punct("*");
        cur.skip_parens();
        if matches!(
            c.object,
            ObjectKind::Trigger | ObjectKind::Policy | ObjectKind::Rule
        ) && cur.eat("on")
        {
            c.on = cur.name();
        }
    }
    c.cascade = has_cascade(cur.rest());
    let Some(first) = cur.peek().and_then(Tok::word) else {
        return;
    };
    let second = cur.peek_at(1).and_then(Tok::word).filter(|w| {
        matches!(
            *w,
            "column"
                | "constraint"
                | "tablespace"
                | "schema"
                | "logged"
                | "unlogged"
                | "access"
                | "trigger"
                | "rule"
                | "partition"
                | "inherit"
                | "default"
                | "statistics"
                | "data"
                | "row"
                | "identity"
                | "value"
                | "attribute"
        )
    });
    c.action = Some(match second {
        Some(s) => format!("{first} {s}"),
        None => first.to_string(),
    });
}

/// `DROP object [CONCURRENTLY] [IF EXISTS] name [, ...] [ON table] [CASCADE]`
fn drop(cur: &mut Cursor, c: &mut Classified) {
    object(cur, c);
    c.kind = kind_of(c.object);
    command(c, "drop");
    cur.eat("concurrently");
    cur.if_exists(c);
    match c.object {
        ObjectKind::Cast | ObjectKind::Transform | ObjectKind::UserMapping => {}
        ObjectKind::Owned => c.kind = StatementKind::Ddl,
        _ => {
            c.names = cur.names(c.object);
            if cur.eat("on") {
                cur.eat("only");
                c.on = cur.name();
            }
        }
    }
    c.cascade = has_cascade(cur.rest());
}

/// The object of `COMMENT ON` / `SECURITY LABEL ON`.
fn on_object(cur: &mut Cursor, c: &mut Classified) {
    object(cur, c);
    match c.object {
        ObjectKind::Column => {
            // [schema.]table.column
            if let Some(full) = cur.name3() {
                c.on = full.0;
                c.names = vec![full.1];
            }
        }
        ObjectKind::Constraint | ObjectKind::Trigger | ObjectKind::Policy | ObjectKind::Rule => {
            c.names = cur.name().into_iter().collect();
            if cur.eat("on") && !cur.eat("domain") {
                c.on = cur.name();
            }
        }
        ObjectKind::Operator => c.names = cur.operator_name().into_iter().collect(),
        ObjectKind::Cast | ObjectKind::Transform => {}
        _ => c.names = cur.name().into_iter().collect(),
    }
}

impl Cursor<'_> {
    /// `[schema.]table.column`: the relation and the column.
    fn name3(&mut self) -> Option<(Option<ObjectName>, ObjectName)> {
        let mut parts = self.parts();
        let column = parts.pop()?;
        let table = parts.pop().map(|name| ObjectName {
            schema: parts.pop(),
            name,
        });
        Some((
            table,
            ObjectName {
                schema: None,
                name: column,
            },
        ))
    }
}

/// `GRANT`/`REVOKE`: privileges on an object, or role membership.
fn privilege(cur: &mut Cursor, c: &mut Classified, verb: &str) {
    c.kind = StatementKind::Privilege;
    c.command = verb.to_string();
    let end = if verb == "grant" { "to" } else { "from" };
    let start = cur.at;
    if cur.seek("on") {
        if cur.eat("all") {
            // ON ALL TABLES IN SCHEMA s
            let kind = cur.peek().and_then(Tok::word).unwrap_or("").to_string();
            cur.at += 1;
            c.object = match kind.as_str() {
                "sequences" => ObjectKind::Sequence,
                "functions" => ObjectKind::Function,
                "procedures" => ObjectKind::Procedure,
                "routines" => ObjectKind::Routine,
                _ => ObjectKind::Table,
            };
            cur.eat_all(&["in", "schema"]);
            c.on = None;
            c.names = Vec::new();
            c.action = Some(format!("all {kind} in schema"));
            let schemas = cur.names(ObjectKind::Schema);
            c.names = schemas;
            return;
        }
        object(cur, c);
        if c.object == ObjectKind::None {
            c.object = ObjectKind::Table;
        }
        c.names = cur.names(c.object);
    } else {
        // GRANT role [, ...] TO role: membership.
        cur.at = start;
        if verb == "revoke" {
            cur.eat_all(&["admin", "option", "for"]);
            cur.eat_all(&["inherit", "option", "for"]);
            cur.eat_all(&["set", "option", "for"]);
        }
        c.object = ObjectKind::Role;
        c.names = cur.names(ObjectKind::Role);
        if !cur.peek_is(end) {
            c.names.clear();
        }
    }
}

/// The statement kind of CREATE/ALTER/DROP on `object`.
fn kind_of(object: ObjectKind) -> StatementKind {
    match object {
        ObjectKind::Role | ObjectKind::DefaultPrivileges => StatementKind::Privilege,
        ObjectKind::System => StatementKind::Utility,
        _ => StatementKind::Ddl,
    }
}
