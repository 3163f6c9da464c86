//! The classifier's table of cases: every row is a statement and what the
//! classifier must say about it, as `kind|command|names|on|flags`.

use super::*;
use crate::analysis::fingerprint;

fn render(sql: &str) -> String {
    let c = classify(&fingerprint(sql).text);
    let names: Vec<String> = c.names.iter().map(|n| n.to_string()).collect();
    let mut flags = Vec::new();
    for (on, name) in [
        (c.concurrently, "concurrently"),
        (c.if_exists, "if_exists"),
        (c.if_not_exists, "if_not_exists"),
        (c.cascade, "cascade"),
        (c.or_replace, "or_replace"),
        (c.temporary, "temporary"),
    ] {
        if on {
            flags.push(name.to_string());
        }
    }
    if let Some(a) = &c.action {
        flags.push(format!("action={a}"));
    }
    format!(
        "{}|{}|{}|{}|{}",
        c.kind.as_str(),
        c.command,
        names.join(","),
        c.on.map(|o| o.to_string()).unwrap_or_default(),
        flags.join(" ")
    )
}

const CASES: &[(&str, &str)] = &[
    // Tables.
    ("CREATE TABLE users (id int)", "ddl|create table|users||"),
    ("CREATE TABLE IF NOT EXISTS app.users (id int)", "ddl|create table|app.users||if_not_exists"),
    ("CREATE TEMP TABLE scratch (x int)", "ddl|create table|scratch||temporary"),
    ("CREATE TEMPORARY TABLE scratch (x int) ON COMMIT DROP", "ddl|create table|scratch||temporary"),
    ("CREATE UNLOGGED TABLE q (x int)", "ddl|create table|q||"),
    ("CREATE GLOBAL TEMPORARY TABLE g (x int)", "ddl|create table|g||temporary"),
    ("CREATE TABLE m (ts date) PARTITION BY RANGE (ts)", "ddl|create table|m||"),
    ("CREATE TABLE m_2024 PARTITION OF m FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')", "ddl|create table|m_2024||"),
    ("CREATE TABLE \"Order Items\" (id int)", "ddl|create table|Order Items||"),
    ("CREATE TABLE \"My\".\"Tbl\" (id int)", "ddl|create table|My.Tbl||"),
    ("CREATE TABLE t2 AS SELECT * FROM t1", "ddl|create table|t2||"),
    ("ALTER TABLE users ADD COLUMN note text DEFAULT 'x'", "ddl|alter table|users||action=add column"),
    ("ALTER TABLE users ADD note text", "ddl|alter table|users||action=add"),
    ("ALTER TABLE IF EXISTS ONLY app.users DROP COLUMN note CASCADE", "ddl|alter table|app.users||if_exists cascade action=drop column"),
    ("ALTER TABLE users RENAME TO people", "ddl|alter table|users||action=rename"),
    ("ALTER TABLE users RENAME COLUMN a TO b", "ddl|alter table|users||action=rename column"),
    ("ALTER TABLE users RENAME CONSTRAINT a TO b", "ddl|alter table|users||action=rename constraint"),
    ("ALTER TABLE users SET TABLESPACE fast", "ddl|alter table|users||action=set tablespace"),
    ("ALTER TABLE ALL IN TABLESPACE a SET TABLESPACE b", "ddl|alter table|||action=set tablespace"),
    ("ALTER TABLE users SET SCHEMA archive", "ddl|alter table|users||action=set schema"),
    ("ALTER TABLE users ALTER COLUMN email TYPE varchar(300)", "ddl|alter table|users||action=alter column"),
    ("ALTER TABLE users ADD CONSTRAINT fk FOREIGN KEY (org) REFERENCES orgs ON DELETE CASCADE", "ddl|alter table|users||action=add constraint"),
    ("ALTER TABLE users DROP CONSTRAINT fk", "ddl|alter table|users||action=drop constraint"),
    ("ALTER TABLE users OWNER TO bob", "ddl|alter table|users||action=owner"),
    ("ALTER TABLE m DETACH PARTITION m_2024 CONCURRENTLY", "ddl|alter table|m||concurrently action=detach partition"),
    ("ALTER TABLE users ENABLE ROW LEVEL SECURITY", "ddl|alter table|users||action=enable row"),
    ("ALTER TABLE \"Orders\" SET TABLESPACE fast", "ddl|alter table|Orders||action=set tablespace"),
    ("DROP TABLE users", "ddl|drop table|users||"),
    ("DROP TABLE IF EXISTS a, app.b CASCADE", "ddl|drop table|a,app.b||if_exists cascade"),
    ("DROP TABLE a RESTRICT", "ddl|drop table|a||"),
    // Indexes.
    ("CREATE INDEX idx ON users (email)", "ddl|create index|idx|users|"),
    ("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx ON ONLY public.users USING btree (email)", "ddl|create index|idx|public.users|concurrently if_not_exists"),
    ("CREATE INDEX ON users (lower(email))", "ddl|create index||users|"),
    ("CREATE INDEX CONCURRENTLY ON \"Users\" (id)", "ddl|create index||Users|concurrently"),
    ("DROP INDEX idx", "ddl|drop index|idx||"),
    ("DROP INDEX CONCURRENTLY IF EXISTS idx_users_email", "ddl|drop index|idx_users_email||concurrently if_exists"),
    ("DROP INDEX 314159", "ddl|drop index|||"),
    ("DROP INDEX $1", "ddl|drop index|||"),
    ("ALTER INDEX idx RENAME TO idx2", "ddl|alter index|idx||action=rename"),
    ("ALTER INDEX idx SET TABLESPACE fast", "ddl|alter index|idx||action=set tablespace"),
    ("ALTER INDEX ALL IN TABLESPACE a SET TABLESPACE b", "ddl|alter index|||action=set tablespace"),
    // Views, materialized views, sequences, foreign tables.
    ("CREATE VIEW v AS SELECT 1", "ddl|create view|v||"),
    ("CREATE OR REPLACE VIEW app.v AS SELECT 1", "ddl|create view|app.v||or_replace"),
    ("CREATE OR REPLACE TEMP RECURSIVE VIEW v (n) AS SELECT 1", "ddl|create view|v||or_replace temporary"),
    ("ALTER VIEW v RENAME TO w", "ddl|alter view|v||action=rename"),
    ("DROP VIEW IF EXISTS v, w", "ddl|drop view|v,w||if_exists"),
    ("CREATE MATERIALIZED VIEW mv AS SELECT 1 WITH NO DATA", "ddl|create materialized view|mv||"),
    ("CREATE MATERIALIZED VIEW IF NOT EXISTS mv AS SELECT 1", "ddl|create materialized view|mv||if_not_exists"),
    ("ALTER MATERIALIZED VIEW mv RENAME TO mv2", "ddl|alter materialized view|mv||action=rename"),
    ("DROP MATERIALIZED VIEW mv CASCADE", "ddl|drop materialized view|mv||cascade"),
    ("REFRESH MATERIALIZED VIEW mv", "maintenance|refresh materialized view|mv||"),
    ("REFRESH MATERIALIZED VIEW CONCURRENTLY app.mv WITH DATA", "maintenance|refresh materialized view|app.mv||concurrently"),
    ("CREATE SEQUENCE s START 1", "ddl|create sequence|s||"),
    ("CREATE TEMP SEQUENCE IF NOT EXISTS s", "ddl|create sequence|s||if_not_exists temporary"),
    ("ALTER SEQUENCE s RESTART WITH 5", "ddl|alter sequence|s||action=restart"),
    ("DROP SEQUENCE s", "ddl|drop sequence|s||"),
    ("CREATE FOREIGN TABLE ft (x int) SERVER srv", "ddl|create foreign table|ft||"),
    ("ALTER FOREIGN TABLE ft ADD COLUMN y int", "ddl|alter foreign table|ft||action=add column"),
    ("DROP FOREIGN TABLE ft", "ddl|drop foreign table|ft||"),
    ("IMPORT FOREIGN SCHEMA remote FROM SERVER srv INTO local", "ddl|import foreign schema|||"),
    // Routines.
    ("CREATE FUNCTION f(int) RETURNS int AS $$ select 1 $$ LANGUAGE sql", "ddl|create function|f||"),
    ("CREATE OR REPLACE FUNCTION app.f() RETURNS trigger LANGUAGE plpgsql AS 'begin end'", "ddl|create function|app.f||or_replace"),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END", "ddl|create function|f||"),
    ("ALTER FUNCTION f(int) RENAME TO g", "ddl|alter function|f||action=rename"),
    ("ALTER FUNCTION f(int) OWNER TO bob", "ddl|alter function|f||action=owner"),
    ("DROP FUNCTION f(int)", "ddl|drop function|f||"),
    ("DROP FUNCTION IF EXISTS f(int), app.g(text) CASCADE", "ddl|drop function|f,app.g||if_exists cascade"),
    ("CREATE PROCEDURE p() LANGUAGE sql AS $$ select 1 $$", "ddl|create procedure|p||"),
    ("DROP PROCEDURE p", "ddl|drop procedure|p||"),
    ("ALTER ROUTINE r() RENAME TO s", "ddl|alter routine|r||action=rename"),
    ("DROP ROUTINE IF EXISTS r", "ddl|drop routine|r||if_exists"),
    ("CREATE AGGREGATE agg(int) (sfunc = int4pl, stype = int)", "ddl|create aggregate|agg||"),
    ("DROP AGGREGATE agg(int)", "ddl|drop aggregate|agg||"),
    // Triggers, rules, policies.
    ("CREATE TRIGGER trg BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION f()", "ddl|create trigger|trg|users|"),
    ("CREATE OR REPLACE TRIGGER trg AFTER UPDATE OF email ON app.users EXECUTE PROCEDURE f()", "ddl|create trigger|trg|app.users|or_replace"),
    ("CREATE CONSTRAINT TRIGGER ct AFTER INSERT ON users DEFERRABLE FOR EACH ROW EXECUTE FUNCTION f()", "ddl|create trigger|ct|users|"),
    ("ALTER TRIGGER trg ON users RENAME TO trg2", "ddl|alter trigger|trg|users|action=rename"),
    ("DROP TRIGGER IF EXISTS trg ON users CASCADE", "ddl|drop trigger|trg|users|if_exists cascade"),
    ("CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION f()", "ddl|create event trigger|et||"),
    ("DROP EVENT TRIGGER et", "ddl|drop event trigger|et||"),
    ("CREATE RULE r AS ON INSERT TO users DO INSTEAD NOTHING", "ddl|create rule|r|users|"),
    ("CREATE OR REPLACE RULE r AS ON UPDATE TO app.users DO ALSO NOTIFY t", "ddl|create rule|r|app.users|or_replace"),
    ("ALTER RULE r ON users RENAME TO r2", "ddl|alter rule|r|users|action=rename"),
    ("DROP RULE r ON users", "ddl|drop rule|r|users|"),
    ("CREATE POLICY p ON users USING (owner = current_user)", "ddl|create policy|p|users|"),
    ("ALTER POLICY p ON users RENAME TO q", "ddl|alter policy|p|users|action=rename"),
    ("DROP POLICY IF EXISTS p ON app.users", "ddl|drop policy|p|app.users|if_exists"),
    // Types, domains, schemas, extensions.
    ("CREATE TYPE mood AS ENUM ('sad', 'ok')", "ddl|create type|mood||"),
    ("ALTER TYPE mood ADD VALUE 'happy'", "ddl|alter type|mood||action=add value"),
    ("ALTER TYPE mood RENAME ATTRIBUTE a TO b", "ddl|alter type|mood||action=rename attribute"),
    ("DROP TYPE IF EXISTS mood CASCADE", "ddl|drop type|mood||if_exists cascade"),
    ("CREATE DOMAIN posint AS int CHECK (VALUE > 0)", "ddl|create domain|posint||"),
    ("DROP DOMAIN posint", "ddl|drop domain|posint||"),
    ("CREATE SCHEMA billing", "ddl|create schema|billing||"),
    ("CREATE SCHEMA IF NOT EXISTS billing AUTHORIZATION bob", "ddl|create schema|billing||if_not_exists"),
    ("CREATE SCHEMA AUTHORIZATION bob", "ddl|create schema|bob||"),
    ("ALTER SCHEMA billing RENAME TO invoicing", "ddl|alter schema|billing||action=rename"),
    ("DROP SCHEMA billing CASCADE", "ddl|drop schema|billing||cascade"),
    ("CREATE EXTENSION IF NOT EXISTS pgcrypto", "ddl|create extension|pgcrypto||if_not_exists"),
    ("ALTER EXTENSION pgcrypto UPDATE", "ddl|alter extension|pgcrypto||action=update"),
    ("DROP EXTENSION pgcrypto", "ddl|drop extension|pgcrypto||"),
    // Replication, roles, databases, tablespaces.
    ("CREATE PUBLICATION pub FOR TABLE users", "ddl|create publication|pub||"),
    ("ALTER PUBLICATION pub ADD TABLE orders", "ddl|alter publication|pub||action=add"),
    ("DROP PUBLICATION pub", "ddl|drop publication|pub||"),
    ("CREATE SUBSCRIPTION sub CONNECTION 'host=x' PUBLICATION pub", "ddl|create subscription|sub||"),
    ("DROP SUBSCRIPTION IF EXISTS sub", "ddl|drop subscription|sub||if_exists"),
    ("CREATE ROLE app LOGIN PASSWORD 'secret'", "privilege|create role|app||"),
    ("CREATE USER bob", "privilege|create role|bob||"),
    ("CREATE GROUP staff", "privilege|create role|staff||"),
    ("ALTER ROLE app SET search_path = app", "privilege|alter role|app||action=set"),
    ("ALTER USER bob RENAME TO robert", "privilege|alter role|bob||action=rename"),
    ("DROP ROLE IF EXISTS app, bob", "privilege|drop role|app,bob||if_exists"),
    ("DROP USER bob", "privilege|drop role|bob||"),
    ("CREATE DATABASE shop", "ddl|create database|shop||"),
    ("ALTER DATABASE shop SET work_mem = '4MB'", "ddl|alter database|shop||action=set"),
    ("DROP DATABASE IF EXISTS shop", "ddl|drop database|shop||if_exists"),
    ("CREATE TABLESPACE fast LOCATION '/ssd'", "ddl|create tablespace|fast||"),
    ("DROP TABLESPACE fast", "ddl|drop tablespace|fast||"),
    // Foreign data, collations, operators, casts, statistics, text search.
    ("CREATE SERVER srv FOREIGN DATA WRAPPER postgres_fdw", "ddl|create server|srv||"),
    ("DROP SERVER IF EXISTS srv CASCADE", "ddl|drop server|srv||if_exists cascade"),
    ("CREATE FOREIGN DATA WRAPPER fdw", "ddl|create foreign data wrapper|fdw||"),
    ("CREATE USER MAPPING FOR bob SERVER srv", "ddl|create user mapping|||"),
    ("DROP USER MAPPING IF EXISTS FOR bob SERVER srv", "ddl|drop user mapping|||if_exists"),
    ("CREATE COLLATION german (provider = icu, locale = 'de')", "ddl|create collation|german||"),
    ("DROP COLLATION german", "ddl|drop collation|german||"),
    ("CREATE OPERATOR === (leftarg = int, rightarg = int, function = int4eq)", "ddl|create operator|===||"),
    ("DROP OPERATOR app.=== (int, int)", "ddl|drop operator|app.===||"),
    ("CREATE OPERATOR CLASS oc FOR TYPE int USING btree AS OPERATOR 1 <", "ddl|create operator class|oc||"),
    ("DROP OPERATOR FAMILY of USING btree", "ddl|drop operator family|of||"),
    ("CREATE CAST (text AS int) WITH FUNCTION f(text)", "ddl|create cast|||"),
    ("DROP CAST IF EXISTS (text AS int)", "ddl|drop cast|||if_exists"),
    ("CREATE STATISTICS st (dependencies) ON a, b FROM t", "ddl|create statistics|st||"),
    ("DROP STATISTICS st", "ddl|drop statistics|st||"),
    ("CREATE TEXT SEARCH CONFIGURATION cfg (COPY = english)", "ddl|create text search configuration|cfg||"),
    ("ALTER TEXT SEARCH DICTIONARY d (StopWords = none)", "ddl|alter text search dictionary|d||"),
    ("DROP TEXT SEARCH PARSER p", "ddl|drop text search parser|p||"),
    ("DROP TEXT SEARCH TEMPLATE t", "ddl|drop text search template|t||"),
    ("CREATE LANGUAGE plsample", "ddl|create language|plsample||"),
    ("CREATE TRUSTED PROCEDURAL LANGUAGE pl2", "ddl|create language|pl2||"),
    ("CREATE CONVERSION conv FOR 'LATIN1' TO 'UTF8' FROM f", "ddl|create conversion|conv||"),
    ("CREATE DEFAULT CONVERSION conv FOR 'LATIN1' TO 'UTF8' FROM f", "ddl|create conversion|conv||"),
    ("CREATE TRANSFORM FOR hstore LANGUAGE plpython3u (FROM SQL WITH FUNCTION f(internal))", "ddl|create transform|||"),
    ("CREATE ACCESS METHOD heap2 TYPE TABLE HANDLER h", "ddl|create access method|heap2||"),
    ("DROP OWNED BY bob CASCADE", "ddl|drop owned|||cascade"),
    ("REASSIGN OWNED BY bob TO alice", "privilege|reassign owned|||"),
    // Comments and labels.
    ("COMMENT ON TABLE users IS 'people'", "ddl|comment on table|users||"),
    ("COMMENT ON COLUMN app.users.email IS 'mail'", "ddl|comment on column|email|app.users|"),
    ("COMMENT ON COLUMN users.email IS NULL", "ddl|comment on column|email|users|"),
    ("COMMENT ON FUNCTION f(int) IS 'x'", "ddl|comment on function|f||"),
    ("COMMENT ON CONSTRAINT fk ON users IS 'x'", "ddl|comment on constraint|fk|users|"),
    ("COMMENT ON TRIGGER trg ON users IS 'x'", "ddl|comment on trigger|trg|users|"),
    ("COMMENT ON SCHEMA billing IS 'x'", "ddl|comment on schema|billing||"),
    ("SECURITY LABEL FOR selinux ON TABLE users IS 'x'", "ddl|security label on table|users||"),
    // Privileges.
    ("GRANT SELECT ON users TO bob", "privilege|grant|users||"),
    ("GRANT SELECT, UPDATE (email) ON TABLE app.users, orders TO bob", "privilege|grant|app.users,orders||"),
    ("GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA app TO bob", "privilege|grant|app||action=all tables in schema"),
    ("GRANT EXECUTE ON FUNCTION f(int) TO bob", "privilege|grant|f||"),
    ("GRANT USAGE ON SCHEMA app TO bob", "privilege|grant|app||"),
    ("GRANT USAGE, SELECT ON SEQUENCE s TO bob", "privilege|grant|s||"),
    ("GRANT CONNECT ON DATABASE shop TO bob", "privilege|grant|shop||"),
    ("GRANT staff TO bob", "privilege|grant|staff||"),
    ("REVOKE SELECT ON users FROM bob CASCADE", "privilege|revoke|users||"),
    ("REVOKE ADMIN OPTION FOR staff FROM bob", "privilege|revoke|staff||"),
    ("ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO bob", "privilege|alter default privileges|||"),
    // Maintenance.
    ("REINDEX TABLE users", "maintenance|reindex table|users||"),
    ("REINDEX TABLE CONCURRENTLY app.users", "maintenance|reindex table|app.users||concurrently"),
    ("REINDEX (VERBOSE) INDEX idx", "maintenance|reindex index|idx||"),
    ("REINDEX SCHEMA app", "maintenance|reindex schema|app||"),
    ("REINDEX DATABASE shop", "maintenance|reindex database|shop||"),
    ("REINDEX SYSTEM", "maintenance|reindex system|||"),
    ("CLUSTER users USING users_pkey", "maintenance|cluster|users||"),
    ("CLUSTER VERBOSE app.users", "maintenance|cluster|app.users||"),
    ("CLUSTER", "maintenance|cluster|||"),
    ("VACUUM", "maintenance|vacuum|||"),
    ("VACUUM FULL ANALYZE users", "maintenance|vacuum|users||"),
    ("VACUUM (VERBOSE, ANALYZE) users (email), orders", "maintenance|vacuum|users,orders||"),
    ("ANALYZE users", "maintenance|analyze|users||"),
    ("ANALYZE VERBOSE app.users (email)", "maintenance|analyze|app.users||"),
    ("ANALYZE", "maintenance|analyze|||"),
    // Data statements and the rest.
    ("TRUNCATE users", "write|truncate|users||"),
    ("TRUNCATE TABLE ONLY a, b RESTART IDENTITY CASCADE", "write|truncate|a,b||cascade"),
    ("LOCK TABLE users IN ACCESS EXCLUSIVE MODE NOWAIT", "utility|lock|users||"),
    ("LOCK users", "utility|lock|users||"),
    ("TABLE users", "read|table|users||"),
    ("SELECT * FROM users", "read|select|||"),
    ("SELECT * FROM users FOR UPDATE", "read|select|||"),
    ("VALUES (1)", "read|values|||"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "read|with|||"),
    ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "write|with|||"),
    ("INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET x = 1", "write|insert|||"),
    ("UPDATE t SET x = 1", "write|update|||"),
    ("DELETE FROM t", "write|delete|||"),
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "write|merge|||"),
    ("COPY t FROM STDIN", "write|copy|||"),
    ("COPY t TO STDOUT", "read|copy|||"),
    ("BEGIN", "transaction|begin|||"),
    ("START TRANSACTION ISOLATION LEVEL SERIALIZABLE", "transaction|start|||"),
    ("COMMIT", "transaction|commit|||"),
    ("PREPARE TRANSACTION 'x'", "transaction|prepare transaction|||"),
    ("PREPARE q AS SELECT 1", "utility|prepare|||"),
    ("SET lock_timeout = '1s'", "utility|set|||"),
    ("SHOW work_mem", "utility|show|||"),
    ("ALTER SYSTEM SET work_mem = '4MB'", "utility|alter system|||"),
    ("EXPLAIN SELECT 1", "utility|explain|||"),
    ("EXPLAIN ANALYZE CREATE TABLE t3 AS SELECT 1", "ddl|create table|t3||"),
    ("EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t", "write|delete|||"),
    ("CHECKPOINT", "utility|checkpoint|||"),
    ("DO $$ begin end $$", "utility|do|||"),
];

#[test]
fn the_table_of_cases() {
    assert!(CASES.len() >= 100, "{} cases", CASES.len());
    let failures: Vec<String> = CASES
        .iter()
        .filter_map(|(sql, want)| {
            let got = render(sql);
            (got != *want).then(|| format!("{sql}\n  want {want}\n  got  {got}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn only_relations_become_relation_uses() {
    let uses = |sql: &str| -> Vec<String> {
        classify(&fingerprint(sql).text)
            .relation_uses()
            .iter()
            .map(|u| format!("{}:{:?}", u.relation, u.mode))
            .collect()
    };
    assert!(uses("CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql").is_empty());
    assert!(uses("CREATE SCHEMA billing").is_empty());
    assert!(uses("DROP INDEX 314159").is_empty());
    assert!(uses("CREATE PUBLICATION pub FOR ALL TABLES").is_empty());
    assert!(uses("CREATE TYPE t AS (a int)").is_empty());
    assert!(uses("GRANT SELECT ON users TO bob").is_empty());
    assert!(uses("COMMENT ON TABLE users IS 'x'").is_empty());
    assert_eq!(uses("CREATE INDEX i ON users (email)"), vec!["users:Write"]);
    assert_eq!(
        uses("CREATE TRIGGER t BEFORE INSERT ON app.users FOR EACH ROW EXECUTE FUNCTION f()"),
        vec!["app.users:Write"]
    );
    assert_eq!(uses("DROP TABLE a, b"), vec!["a:Write", "b:Write"]);
    assert_eq!(uses("TABLE users"), vec!["users:Read"]);
}

#[test]
fn only_schema_changes_reload_the_catalog() {
    let reloads = |sql: &str| classify(&fingerprint(sql).text).changes_catalog();
    for sql in [
        "ALTER TABLE users ADD COLUMN x int",
        "CREATE TABLE t (x int)",
        "DROP VIEW v",
        "CREATE SCHEMA s",
        "ALTER TYPE mood RENAME TO feeling",
        "DROP OWNED BY bob",
    ] {
        assert!(reloads(sql), "{sql}");
    }
    for sql in [
        "VACUUM users",
        "ANALYZE users",
        "GRANT SELECT ON users TO bob",
        "CREATE INDEX i ON users (x)",
        "CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql",
        "COMMENT ON TABLE users IS 'x'",
        "CREATE ROLE bob",
        "REINDEX TABLE users",
    ] {
        assert!(!reloads(sql), "{sql}");
    }
}

#[test]
fn a_multi_statement_text_is_classified_statement_by_statement() {
    let all = classify_all(&fingerprint("SET lock_timeout = '1s'; ALTER TABLE t ADD x int").text);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].command, "set");
    assert_eq!(all[1].command, "alter table");
    assert_eq!(all[1].name().map(|n| n.name.as_str()), Some("t"));
    assert_eq!(all[1].text, "alter table t add x int");
}
