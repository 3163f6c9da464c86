//! Walks a parsed statement and collects the relations and columns it reads
//! and writes, with scopes: CTE names and aliases are never reported as
//! tables, and unqualified columns keep their candidate relations per scope.

use super::model::{ColumnUse, Mode, RelationName, RelationUse, StatementKind};
use sqlparser::ast::{
    AlterTableOperation, Assignment, AssignmentTarget, ColumnOption, ConflictTarget, CopySource,
    Expr, ForeignKeyConstraint, FromTable, GroupByExpr, Ident, Insert, JoinConstraint,
    JoinOperator, MergeAction, MergeInsertKind, MergeUpdateKind, NamedWindowExpr, ObjectName,
    ObjectNamePart, OnConflictAction, OnInsert, OrderByKind, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, TableConstraint, TableFactor, TableObject,
    TableWithJoins, UpdateTableFromKind, Visit, Visitor,
};
use std::collections::BTreeSet;
use std::ops::ControlFlow;

/// Uses collected from one or more statements.
#[derive(Default)]
pub struct Uses {
    /// Relations with mode and the implicit all-columns flag.
    pub relations: BTreeSet<RelationUse>,
    /// Columns with their candidate scopes.
    pub columns: BTreeSet<ColumnUse>,
}

/// Folds an identifier as Postgres does: unquoted to lower case.
pub fn ident_name(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

fn parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => ident_name(i),
            other => other.to_string(),
        })
        .collect()
}

/// `[db.]schema.name` or `name` as a relation name.
pub fn relation_name(name: &ObjectName) -> RelationName {
    let mut p = parts(name);
    let rel = p.pop().unwrap_or_default();
    RelationName {
        schema: p.pop(),
        name: rel,
    }
}

/// One name visible in a FROM clause.
#[derive(Clone, Debug)]
struct Source {
    /// Alias, or the relation's own name.
    name: String,
    /// The real relation behind it; `None` for subqueries, CTEs, functions.
    relation: Option<RelationName>,
    /// Output columns of a derived source, when known.
    columns: Option<Vec<String>>,
}

/// One query level: its FROM sources, its CTEs and its output aliases.
#[derive(Default, Clone, Debug)]
struct Scope {
    sources: Vec<Source>,
    ctes: Vec<(String, Option<Vec<String>>)>,
    /// Output names, visible to unqualified names while walking ORDER BY / GROUP BY.
    output_aliases: Vec<String>,
    aliases_visible: bool,
    /// Columns merged by JOIN ... USING (recorded for both sides already).
    using_columns: Vec<String>,
}

/// The statement walker.
pub struct Extractor {
    uses: Uses,
    /// Scopes from outermost to innermost.
    scopes: Vec<Scope>,
}

impl Extractor {
    /// A walker with no uses yet.
    pub fn new() -> Self {
        Extractor {
            uses: Uses::default(),
            scopes: Vec::new(),
        }
    }

    /// The uses collected so far.
    pub fn finish(self) -> Uses {
        self.uses
    }

    /// Walks one statement and returns its kind.
    pub fn statement(&mut self, stmt: &Statement) -> StatementKind {
        match stmt {
            Statement::Query(q) => {
                self.query(q, false);
                if query_writes(q) {
                    StatementKind::Write
                } else {
                    StatementKind::Read
                }
            }
            Statement::Insert(insert) => {
                self.insert(insert);
                StatementKind::Write
            }
            Statement::Update(update) => {
                self.with_scope(|x| {
                    let target = x.add_table_with_joins(&update.table, Mode::Write);
                    if let Some(
                        UpdateTableFromKind::BeforeSet(from) | UpdateTableFromKind::AfterSet(from),
                    ) = &update.from
                    {
                        for twj in from {
                            x.add_table_with_joins(twj, Mode::Read);
                        }
                    }
                    x.assignments(&update.assignments, target.as_ref());
                    if let Some(sel) = &update.selection {
                        x.expr(sel);
                    }
                    x.returning(update.returning.as_deref());
                });
                StatementKind::Write
            }
            Statement::Delete(delete) => {
                self.with_scope(|x| {
                    let from = match &delete.from {
                        FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f) => f,
                    };
                    for twj in from {
                        x.add_table_with_joins(twj, Mode::Write);
                    }
                    for name in &delete.tables {
                        x.relation(relation_name(name), Mode::Write, false);
                    }
                    for twj in delete.using.iter().flatten() {
                        x.add_table_with_joins(twj, Mode::Read);
                    }
                    if let Some(sel) = &delete.selection {
                        x.expr(sel);
                    }
                    x.returning(delete.returning.as_deref());
                });
                StatementKind::Write
            }
            Statement::Copy { source, to, .. } => match source {
                CopySource::Table {
                    table_name,
                    columns,
                } => {
                    let rel = relation_name(table_name);
                    let mode = if *to { Mode::Read } else { Mode::Write };
                    self.relation(rel.clone(), mode, columns.is_empty());
                    for c in columns {
                        self.column_certain(&rel, ident_name(c), mode);
                    }
                    if *to {
                        StatementKind::Read
                    } else {
                        StatementKind::Write
                    }
                }
                CopySource::Query(q) => {
                    self.query(q, false);
                    StatementKind::Read
                }
            },
            Statement::Truncate(t) => {
                for target in &t.table_names {
                    self.relation(relation_name(&target.name), Mode::Write, false);
                }
                StatementKind::Write
            }
            Statement::Merge(merge) => {
                self.with_scope(|x| {
                    let target = x.add_factor(&merge.table, Mode::Write);
                    x.add_factor(&merge.source, Mode::Read);
                    x.expr(&merge.on);
                    let rel = target.as_ref().and_then(|t| t.relation.clone());
                    for clause in &merge.clauses {
                        if let Some(p) = &clause.predicate {
                            x.expr(p);
                        }
                        match &clause.action {
                            MergeAction::Update(update) => {
                                if let MergeUpdateKind::Set(assignments) = &update.kind {
                                    x.assignments(assignments, target.as_ref());
                                }
                            }
                            MergeAction::Insert(insert) => {
                                if let Some(rel) = &rel {
                                    for c in &insert.columns {
                                        let col = parts(c).pop().unwrap_or_default();
                                        x.column_certain(rel, col, Mode::Write);
                                    }
                                    if insert.columns.is_empty() {
                                        x.relation(rel.clone(), Mode::Write, true);
                                    }
                                }
                                if let MergeInsertKind::Values(values) = &insert.kind {
                                    for row in &values.rows {
                                        for e in row.iter() {
                                            x.expr(e);
                                        }
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                });
                StatementKind::Write
            }
            Statement::Explain {
                statement, analyze, ..
            } => {
                let inner = self.statement(statement);
                // EXPLAIN ANALYZE runs the statement.
                if *analyze {
                    inner
                } else {
                    StatementKind::Utility
                }
            }
            Statement::Prepare { statement, .. } => {
                self.statement(statement);
                StatementKind::Utility
            }
            Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. } => StatementKind::Transaction,
            Statement::CreateTable(ct) => {
                let mut rel = relation_name(&ct.name);
                if ct.temporary && rel.schema.is_none() {
                    // A temporary table lives in the session's pg_temp.
                    rel.schema = Some(crate::catalog::TEMP_SCHEMA.into());
                }
                self.relation(rel, Mode::Write, false);
                for col in &ct.columns {
                    for opt in &col.options {
                        if let ColumnOption::ForeignKey(fk) = &opt.option {
                            self.foreign_key(fk);
                        }
                    }
                }
                for constraint in &ct.constraints {
                    if let TableConstraint::ForeignKey(fk) = constraint {
                        self.foreign_key(fk);
                    }
                }
                if let Some(q) = &ct.query {
                    self.query(q, false);
                }
                StatementKind::Ddl
            }
            Statement::CreateView(cv) => {
                self.relation(relation_name(&cv.name), Mode::Write, false);
                self.query(&cv.query, false);
                StatementKind::Ddl
            }
            Statement::CreateIndex(ci) => {
                let rel = relation_name(&ci.table_name);
                self.relation(rel.clone(), Mode::Write, false);
                self.with_scope(|x| {
                    x.scope().sources.push(Source {
                        name: rel.name.clone(),
                        relation: Some(rel.clone()),
                        columns: None,
                    });
                    for col in &ci.columns {
                        x.expr(&col.column.expr);
                    }
                    for inc in &ci.include {
                        x.column_certain(&rel, ident_name(inc), Mode::Read);
                    }
                    if let Some(p) = &ci.predicate {
                        x.expr(p);
                    }
                });
                StatementKind::Ddl
            }
            Statement::AlterTable(at) => {
                let rel = relation_name(&at.name);
                self.relation(rel.clone(), Mode::Write, false);
                for op in &at.operations {
                    match op {
                        AlterTableOperation::DropColumn { column_names, .. } => {
                            for c in column_names {
                                self.column_certain(&rel, ident_name(c), Mode::Write);
                            }
                        }
                        AlterTableOperation::RenameColumn {
                            old_column_name, ..
                        } => {
                            self.column_certain(&rel, ident_name(old_column_name), Mode::Write);
                        }
                        AlterTableOperation::AlterColumn { column_name, .. } => {
                            self.column_certain(&rel, ident_name(column_name), Mode::Write);
                        }
                        AlterTableOperation::AddColumn { column_def, .. } => {
                            for opt in &column_def.options {
                                if let ColumnOption::ForeignKey(fk) = &opt.option {
                                    self.foreign_key(fk);
                                }
                            }
                        }
                        AlterTableOperation::AddConstraint {
                            constraint: TableConstraint::ForeignKey(fk),
                            ..
                        } => self.foreign_key(fk),
                        _ => {}
                    }
                }
                StatementKind::Ddl
            }
            other => {
                // DROP, GRANT, VACUUM, ...: the classifier knows the object
                // kind, and only relations become relation uses.
                let c = super::classify::classify(&super::fingerprint(&other.to_string()).text);
                for u in c.relation_uses() {
                    self.relation(u.relation, u.mode, u.all_columns);
                }
                c.kind
            }
        }
    }

    fn with_scope<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        self.scopes.push(Scope::default());
        let r = f(self);
        self.scopes.pop();
        r
    }

    fn scope(&mut self) -> &mut Scope {
        if self.scopes.is_empty() {
            self.scopes.push(Scope::default());
        }
        let last = self.scopes.len() - 1;
        &mut self.scopes[last]
    }

    fn relation(&mut self, relation: RelationName, mode: Mode, all_columns: bool) {
        self.uses.relations.insert(RelationUse {
            relation,
            mode,
            all_columns,
        });
    }

    fn column_certain(&mut self, rel: &RelationName, column: String, mode: Mode) {
        self.uses.columns.insert(ColumnUse {
            column,
            scopes: vec![vec![rel.clone()]],
            certain: true,
            mode,
        });
    }

    /// A CTE with this (unqualified) name, in this or an outer scope.
    fn find_cte(&self, name: &str) -> Option<Option<Vec<String>>> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.ctes.iter().rev())
            .find(|(n, _)| n == name)
            .map(|(_, cols)| cols.clone())
    }

    /// Walks a query; `lateral` keeps the current scope visible as a parent
    /// (always true for subqueries in expressions). Returns the output
    /// column names when they are all known.
    fn query(&mut self, q: &Query, _lateral: bool) -> Option<Vec<String>> {
        self.with_scope(|x| {
            if let Some(with) = &q.with {
                for cte in &with.cte_tables {
                    let name = ident_name(&cte.alias.name);
                    let declared: Option<Vec<String>> =
                        (!cte.alias.columns.is_empty()).then(|| {
                            cte.alias
                                .columns
                                .iter()
                                .map(|c| ident_name(&c.name))
                                .collect()
                        });
                    if with.recursive {
                        x.scope().ctes.push((name.clone(), declared.clone()));
                    }
                    let mut cols = x.query(&cte.query, true);
                    if !cte.alias.columns.is_empty() {
                        cols = Some(
                            cte.alias
                                .columns
                                .iter()
                                .map(|c| ident_name(&c.name))
                                .collect(),
                        );
                    }
                    x.scope().ctes.push((name, cols));
                }
            }
            let order_by: Vec<&Expr> = match q.order_by.as_ref().map(|o| &o.kind) {
                Some(OrderByKind::Expressions(exprs)) => exprs.iter().map(|e| &e.expr).collect(),
                _ => Vec::new(),
            };
            let out = x.set_expr(&q.body, &order_by);
            if let Some(limit) = &q.limit_clause {
                x.expr_node(limit);
            }
            out
        })
    }

    fn set_expr(&mut self, body: &SetExpr, order_by: &[&Expr]) -> Option<Vec<String>> {
        match body {
            SetExpr::Select(select) => self.with_scope(|x| x.select(select, order_by)),
            SetExpr::Query(q) => self.query(q, true),
            SetExpr::SetOperation { left, right, .. } => {
                let out = self.set_expr(left, &[]);
                self.set_expr(right, &[]);
                out
            }
            SetExpr::Values(values) => {
                for row in &values.rows {
                    for e in row.iter() {
                        self.expr(e);
                    }
                }
                None
            }
            SetExpr::Insert(stmt)
            | SetExpr::Update(stmt)
            | SetExpr::Delete(stmt)
            | SetExpr::Merge(stmt) => {
                self.statement(stmt);
                None
            }
            SetExpr::Table(t) => {
                if let Some(name) = &t.table_name {
                    let rel = RelationName {
                        schema: t.schema_name.as_ref().map(ident_name),
                        name: ident_name(name),
                    };
                    self.relation(rel, Mode::Read, true);
                }
                None
            }
        }
    }

    fn select(&mut self, s: &Select, order_by: &[&Expr]) -> Option<Vec<String>> {
        for twj in &s.from {
            self.add_table_with_joins(twj, Mode::Read);
        }
        let mut outputs = Some(Vec::new());
        let mut aliases = Vec::new();
        for item in &s.projection {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    self.expr(e);
                    let name = output_name(e);
                    match (name, outputs.as_mut()) {
                        (Some(n), Some(o)) => o.push(n),
                        _ => outputs = None,
                    }
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    self.expr(expr);
                    let n = ident_name(alias);
                    aliases.push(n.clone());
                    if let Some(o) = outputs.as_mut() {
                        o.push(n);
                    }
                }
                SelectItem::ExprWithAliases {
                    expr,
                    aliases: names,
                } => {
                    self.expr(expr);
                    for a in names {
                        aliases.push(ident_name(a));
                    }
                    outputs = None;
                }
                SelectItem::Wildcard(_) => {
                    self.star(None);
                    outputs = None;
                }
                SelectItem::QualifiedWildcard(kind, _) => {
                    match kind {
                        SelectItemQualifiedWildcardKind::ObjectName(name) => {
                            self.star(Some(&parts(name)))
                        }
                        SelectItemQualifiedWildcardKind::Expr(e) => self.expr(e),
                    }
                    outputs = None;
                }
            }
        }
        if let Some(sqlparser::ast::Distinct::On(exprs)) = &s.distinct {
            for e in exprs {
                self.expr(e);
            }
        }
        self.scope().output_aliases = aliases;
        if let Some(sel) = &s.selection {
            self.expr(sel);
        }
        if let Some(h) = &s.having {
            self.expr(h);
        }
        for window in &s.named_window {
            if let NamedWindowExpr::WindowSpec(spec) = &window.1 {
                for e in &spec.partition_by {
                    self.expr(e);
                }
                for o in &spec.order_by {
                    self.expr(&o.expr);
                }
            }
        }
        if let Some(q) = &s.qualify {
            self.expr(q);
        }
        // Output names count in GROUP BY and ORDER BY only.
        self.scope().aliases_visible = true;
        if let GroupByExpr::Expressions(exprs, _) = &s.group_by {
            for e in exprs {
                self.expr(e);
            }
        }
        for e in order_by {
            self.expr(e);
        }
        self.scope().aliases_visible = false;
        outputs
    }

    /// `*` or `q.*`: every relation in scope (or the named one) is used whole.
    fn star(&mut self, qualifier: Option<&[String]>) {
        let sources = self.scope().sources.clone();
        for src in sources {
            let matches = match qualifier {
                None => true,
                Some(q) => source_matches(&src, q),
            };
            if matches {
                if let Some(rel) = src.relation {
                    self.relation(rel, Mode::Read, true);
                }
            }
        }
    }

    /// Adds a FROM item and its joins to the current scope; returns the
    /// first real relation (the target of UPDATE/DELETE).
    fn add_table_with_joins(&mut self, twj: &TableWithJoins, mode: Mode) -> Option<Source> {
        let first = self.add_factor(&twj.relation, mode);
        for join in &twj.joins {
            let before: Vec<Source> = self.scope().sources.clone();
            let right = self.add_factor(&join.relation, Mode::Read);
            if let Some(constraint) = join_constraint(&join.join_operator) {
                match constraint {
                    JoinConstraint::On(e) => self.expr(e),
                    JoinConstraint::Using(cols) | JoinConstraint::UsingAlias(cols, _) => {
                        for c in cols {
                            let col = parts(c).pop().unwrap_or_default();
                            if let Some(rel) = right.as_ref().and_then(|r| r.relation.clone()) {
                                self.column_certain(&rel, col.clone(), Mode::Read);
                            }
                            let left: Vec<RelationName> =
                                before.iter().filter_map(|s| s.relation.clone()).collect();
                            if !left.is_empty() {
                                self.uses.columns.insert(ColumnUse {
                                    column: col.clone(),
                                    scopes: vec![left],
                                    certain: false,
                                    mode: Mode::Read,
                                });
                            }
                            // The merged column, named unqualified later, is both sides'.
                            self.scope().using_columns.push(col);
                        }
                    }
                    _ => {}
                }
            }
        }
        first
    }

    fn add_factor(&mut self, factor: &TableFactor, mode: Mode) -> Option<Source> {
        let source = match factor {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                let p = parts(name);
                let alias_name = alias.as_ref().map(|a| ident_name(&a.name));
                if let Some(args) = args {
                    // A set-returning function in FROM: generate_series(...), unnest(...).
                    for a in &args.args {
                        let _ = a.visit(&mut ExprCollector::new(self));
                    }
                    Source {
                        name: alias_name.unwrap_or_else(|| p.last().cloned().unwrap_or_default()),
                        relation: None,
                        columns: None,
                    }
                } else if let (1, Some(cols)) = (p.len(), self.find_cte(&p[0])) {
                    Source {
                        name: alias_name.unwrap_or_else(|| p[0].clone()),
                        relation: None,
                        columns: cols,
                    }
                } else {
                    let rel = relation_name(name);
                    self.relation(rel.clone(), mode, false);
                    Source {
                        name: alias_name.unwrap_or_else(|| rel.name.clone()),
                        relation: Some(rel),
                        columns: None,
                    }
                }
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                let mut cols = self.query(subquery, true);
                if let Some(a) = alias {
                    if !a.columns.is_empty() {
                        cols = Some(a.columns.iter().map(|c| ident_name(&c.name)).collect());
                    }
                }
                Source {
                    name: alias
                        .as_ref()
                        .map(|a| ident_name(&a.name))
                        .unwrap_or_default(),
                    relation: None,
                    columns: cols,
                }
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                self.add_table_with_joins(table_with_joins, mode);
                match alias {
                    Some(a) => Source {
                        name: ident_name(&a.name),
                        relation: None,
                        columns: None,
                    },
                    None => return None,
                }
            }
            other => {
                // Table functions, UNNEST, JSON_TABLE ...: their arguments may
                // name columns of earlier FROM items.
                let _ = other.visit(&mut ExprCollector::new(self));
                let alias = match other {
                    TableFactor::TableFunction { alias, .. }
                    | TableFactor::Function { alias, .. }
                    | TableFactor::UNNEST { alias, .. } => {
                        alias.as_ref().map(|a| ident_name(&a.name))
                    }
                    _ => None,
                };
                Source {
                    name: alias.unwrap_or_default(),
                    relation: None,
                    columns: None,
                }
            }
        };
        self.scope().sources.push(source.clone());
        Some(source)
    }

    /// `REFERENCES t (col)`: the referenced table and columns are read.
    fn foreign_key(&mut self, fk: &ForeignKeyConstraint) {
        let rel = relation_name(&fk.foreign_table);
        self.relation(rel.clone(), Mode::Read, false);
        for c in &fk.referred_columns {
            self.column_certain(&rel, ident_name(c), Mode::Read);
        }
    }

    fn insert(&mut self, insert: &Insert) {
        let TableObject::TableName(name) = &insert.table else {
            return;
        };
        let rel = relation_name(name);
        // `DEFAULT VALUES` names no column and supplies no value.
        let all_columns = insert.columns.is_empty() && insert.source.is_some();
        self.relation(rel.clone(), Mode::Write, all_columns);
        for c in &insert.columns {
            let col = parts(c).pop().unwrap_or_default();
            self.column_certain(&rel, col, Mode::Write);
        }
        if let Some(source) = &insert.source {
            self.query(source, false);
        }
        self.with_scope(|x| {
            let alias = insert.table_alias.as_ref().map(|a| ident_name(&a.alias));
            x.scope().sources.push(Source {
                name: alias.unwrap_or_else(|| rel.name.clone()),
                relation: Some(rel.clone()),
                columns: None,
            });
            x.scope().sources.push(Source {
                name: "excluded".into(),
                relation: Some(rel.clone()),
                columns: None,
            });
            if let Some(OnInsert::OnConflict(oc)) = &insert.on {
                if let Some(ConflictTarget::Columns { columns, predicate }) = &oc.conflict_target {
                    for c in columns {
                        x.column_certain(&rel, ident_name(c), Mode::Read);
                    }
                    if let Some(p) = predicate {
                        x.expr(p);
                    }
                }
                if let OnConflictAction::DoUpdate(du) = &oc.action {
                    let target = x.scope().sources.first().cloned();
                    x.assignments(&du.assignments, target.as_ref());
                    if let Some(sel) = &du.selection {
                        x.expr(sel);
                    }
                }
            }
            // RETURNING sees only the target table.
            x.scope().sources.truncate(1);
            x.returning(insert.returning.as_deref());
        });
    }

    fn assignments(&mut self, assignments: &[Assignment], target: Option<&Source>) {
        let rel = target.and_then(|t| t.relation.clone());
        for a in assignments {
            let names: Vec<&ObjectName> = match &a.target {
                AssignmentTarget::ColumnName(n) => vec![n],
                AssignmentTarget::Tuple(ns) => ns.iter().collect(),
            };
            if let Some(rel) = &rel {
                for n in names {
                    let col = parts(n).pop().unwrap_or_default();
                    self.column_certain(rel, col, Mode::Write);
                }
            }
            self.expr(&a.value);
        }
    }

    fn returning(&mut self, items: Option<&[SelectItem]>) {
        for item in items.unwrap_or_default() {
            match item {
                SelectItem::UnnamedExpr(e)
                | SelectItem::ExprWithAlias { expr: e, .. }
                | SelectItem::ExprWithAliases { expr: e, .. } => self.expr(e),
                SelectItem::Wildcard(_) => self.star(None),
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(n),
                    _,
                ) => self.star(Some(&parts(n))),
                SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::Expr(e), _) => {
                    self.expr(e)
                }
            }
        }
    }

    /// Collects the columns of an expression in the current scope; nested
    /// queries are walked with their own scope.
    fn expr(&mut self, e: &Expr) {
        let _ = e.visit(&mut ExprCollector::new(self));
    }

    fn expr_node<V: Visit>(&mut self, node: &V) {
        let _ = node.visit(&mut ExprCollector::new(self));
    }

    /// Records a column reference `parts` (`col`, `t.col`, `s.t.col`).
    fn column_ref(&mut self, idents: &[Ident]) {
        let names: Vec<String> = idents.iter().map(ident_name).collect();
        match names.as_slice() {
            [] => {}
            [col] => {
                if col == "default" && idents[0].quote_style.is_none() {
                    return;
                }
                self.unqualified(col.clone());
            }
            [qualifier @ .., col] => {
                // `t.col`, `s.t.col`; also `t.col.field` (composite) — try the
                // longest qualifier that names a source.
                for q in [qualifier] {
                    if let Some(src) = self.find_source(q) {
                        if let Some(rel) = src.relation {
                            self.column_certain(&rel, col.clone(), Mode::Read);
                        }
                        return;
                    }
                }
                // `col.field` of a composite column: the first part is the column.
                if let Some(first) = names.first() {
                    if self.find_source(&names[..1]).is_none() {
                        self.unqualified(first.clone());
                    }
                }
            }
        }
    }

    fn find_source(&self, qualifier: &[String]) -> Option<Source> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.sources.iter().rev())
            .find(|s| source_matches(s, qualifier))
            .cloned()
    }

    fn unqualified(&mut self, col: String) {
        if let Some(scope) = self.scopes.last() {
            if scope.aliases_visible && scope.output_aliases.contains(&col) {
                return;
            }
            if scope.using_columns.contains(&col) {
                return;
            }
        }
        let mut scopes: Vec<Vec<RelationName>> = Vec::new();
        for scope in self.scopes.iter().rev() {
            // A derived source that outputs this name: the column is the
            // subquery's, already recorded inside it.
            if scope
                .sources
                .iter()
                .any(|s| s.columns.as_ref().is_some_and(|c| c.contains(&col)))
            {
                if scopes.is_empty() {
                    return;
                }
                break;
            }
            let rels: Vec<RelationName> = scope
                .sources
                .iter()
                .filter_map(|s| s.relation.clone())
                .collect();
            if !rels.is_empty() {
                scopes.push(rels);
            }
        }
        // `json_agg(o)`: the bare name of a FROM item is a whole-row reference.
        if let Some(src) = self.find_source(std::slice::from_ref(&col)) {
            if let Some(rel) = src.relation {
                self.relation(rel, Mode::Read, true);
            }
            return;
        }
        if !scopes.is_empty() {
            self.uses.columns.insert(ColumnUse {
                column: col,
                scopes,
                certain: false,
                mode: Mode::Read,
            });
        }
    }
}

/// The name Postgres gives an unaliased select-list expression, when it is
/// a column name (an identifier, a function's name, a cast's operand).
fn output_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(ident_name(i)),
        Expr::CompoundIdentifier(ids) => ids.last().map(ident_name),
        Expr::Function(f) => parts(&f.name).pop(),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => output_name(expr),
        _ => None,
    }
}

impl Default for Extractor {
    fn default() -> Self {
        Self::new()
    }
}

fn source_matches(src: &Source, qualifier: &[String]) -> bool {
    match qualifier {
        [name] => &src.name == name,
        [schema, name] => {
            src.relation
                .as_ref()
                .is_some_and(|r| &r.name == name && r.schema.as_deref().is_none_or(|s| s == schema))
                && src.name == *name
        }
        [_, schema, name] => src
            .relation
            .as_ref()
            .is_some_and(|r| &r.name == name && r.schema.as_deref().is_none_or(|s| s == schema)),
        _ => false,
    }
}

/// The constraint of a join (ON, USING, NATURAL, none); `None` for join
/// kinds without one.
pub(crate) fn join_constraint(op: &JoinOperator) -> Option<&JoinConstraint> {
    match op {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c)
        | JoinOperator::Semi(c)
        | JoinOperator::LeftSemi(c)
        | JoinOperator::RightSemi(c)
        | JoinOperator::Anti(c)
        | JoinOperator::LeftAnti(c)
        | JoinOperator::RightAnti(c)
        | JoinOperator::StraightJoin(c) => Some(c),
        _ => None,
    }
}

/// True when a query contains a data-modifying CTE or body.
fn query_writes(q: &Query) -> bool {
    struct W(bool);
    impl Visitor for W {
        type Break = ();
        fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
            if matches!(
                s,
                Statement::Insert(_)
                    | Statement::Update(_)
                    | Statement::Delete(_)
                    | Statement::Merge(_)
            ) {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut w = W(false);
    let _ = q.visit(&mut w);
    w.0
}

/// Visitor that records column references at its own query level and hands
/// each nested query to the extractor, which walks it with its own scope.
/// (sqlparser's visitor cannot skip a subtree, so references inside nested
/// queries are ignored here by depth.)
struct ExprCollector<'a> {
    x: &'a mut Extractor,
    depth: usize,
}

impl<'a> ExprCollector<'a> {
    fn new(x: &'a mut Extractor) -> Self {
        ExprCollector { x, depth: 0 }
    }
}

impl Visitor for ExprCollector<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if self.depth == 0 {
            self.x.query(q, true);
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _q: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if self.depth > 0 {
            return ControlFlow::Continue(());
        }
        match e {
            Expr::Identifier(id) => self.x.column_ref(std::slice::from_ref(id)),
            Expr::CompoundIdentifier(ids) => self.x.column_ref(ids),
            Expr::QualifiedWildcard(name, _) => self.x.star(Some(&parts(name))),
            Expr::Function(f) => {
                // `row_to_json(u.*)`: a qualified star as a function argument.
                if let sqlparser::ast::FunctionArguments::List(list) = &f.args {
                    for arg in &list.args {
                        if let sqlparser::ast::FunctionArg::Unnamed(
                            sqlparser::ast::FunctionArgExpr::QualifiedWildcard(name),
                        ) = arg
                        {
                            self.x.star(Some(&parts(name)));
                        }
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}
