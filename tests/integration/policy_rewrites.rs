//! Each rewrite plan of the policy, run step by step on a real database,
//! leaves the same schema (`pg_dump --schema-only`) as the original
//! statement, only valid indexes, and can be run again (a retry after a
//! failed step finishes the job).

use crate::support::{connect, Cluster};
use ddlguard::config::PolicySettings;
use ddlguard::policy::statement::Name;
use ddlguard::policy::{decide, Context, ObjectKind, Plan, Statement, Usage, Verdict};
use std::process::Command;

const SETUP: &str = "
    CREATE TABLE o (id int PRIMARY KEY);
    INSERT INTO o SELECT generate_series(1, 20);
    CREATE TABLE t (id int, a int, b text, o_id int);
    INSERT INTO t SELECT i, i, 'b' || i, 1 + i % 20 FROM generate_series(1, 500) i;
    CREATE INDEX t_b_existing ON t (b);
    CREATE DOMAIN price AS numeric;
    CREATE TABLE m (k int) PARTITION BY RANGE (k);
    CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (100);
    CREATE MATERIALIZED VIEW mv AS SELECT id, a FROM t;
    CREATE UNIQUE INDEX mv_id ON mv (id);
";

/// The materialized view `mv` has a unique index (as the gate would learn
/// from the catalog).
struct MvIndexed;

impl Usage for MvIndexed {
    fn dependents(
        &self,
        _: ObjectKind,
        _: &Name,
        _: Option<&str>,
    ) -> Vec<ddlguard::policy::Dependent> {
        Vec::new()
    }

    fn has_unique_index(&self, view: &Name) -> bool {
        view.name == "mv"
    }
}

fn plan_for(sql: &str) -> Plan {
    let mut settings = PolicySettings::default();
    settings.rules.insert(
        "refresh-matview-nonconcurrent".into(),
        ddlguard::policy::Action::Rewrite,
    );
    let ctx = Context {
        usage: &MvIndexed,
        ..Context::default()
    };
    match decide(&Statement::new(sql), &ctx, &settings).verdict {
        Verdict::Rewrite(plan) => plan,
        other => panic!("{sql}: expected a rewrite, got {other:?}"),
    }
}

fn schema(cluster: &Cluster, db: &str) -> String {
    let out = Command::new(cluster.tool("pg_dump"))
        .args(["-h", "127.0.0.1", "-p", &cluster.port.to_string()])
        .args(["-U", "postgres", "--schema-only", "-d", db])
        .env("PGSSLMODE", "disable")
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            !l.starts_with("--") && !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn run_plan(client: &tokio_postgres::Client, plan: &Plan) {
    for step in &plan.steps {
        if let Some(q) = &step.only_if {
            if client.query(q.as_str(), &[]).await.unwrap().is_empty() {
                continue;
            }
        }
        client
            .batch_execute(&step.sql)
            .await
            .unwrap_or_else(|e| panic!("step {:?} ({}) failed: {e}", step.sql, step.description));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rewrite_leaves_the_schema_of_the_original_statement() {
    let cluster = Cluster::shared();
    let cases: &[(&str, bool)] = &[
        ("CREATE INDEX t_a_idx ON t (a)", true),
        ("CREATE INDEX ON t (a, b)", false),
        ("CREATE UNIQUE INDEX t_id_key ON t (id)", true),
        ("DROP INDEX t_b_existing", true),
        ("REINDEX TABLE t", true),
        (
            "ALTER TABLE t ADD FOREIGN KEY (o_id) REFERENCES o (id)",
            true,
        ),
        ("ALTER TABLE t ADD COLUMN o2 int REFERENCES o (id)", true),
        (
            "ALTER TABLE t ADD COLUMN o3 int NOT NULL DEFAULT 1 CONSTRAINT t_o3_ref REFERENCES o (id) ON DELETE CASCADE",
            true,
        ),
        ("ALTER TABLE t ADD COLUMN c2 text CONSTRAINT c2_uq UNIQUE", true),
        ("ALTER TABLE t ADD CHECK (a > 0)", true),
        ("ALTER TABLE t ALTER COLUMN a SET NOT NULL", true),
        ("ALTER TABLE t ADD UNIQUE (a)", true),
        ("ALTER TABLE t ADD PRIMARY KEY (id)", true),
        ("ALTER TABLE t ADD COLUMN code text UNIQUE", true),
        (
            "ALTER DOMAIN price ADD CONSTRAINT pos CHECK (VALUE > 0)",
            true,
        ),
        ("ALTER TABLE m DETACH PARTITION m1", false),
        ("REFRESH MATERIALIZED VIEW mv", true),
    ];
    for (i, (sql, again)) in cases.iter().enumerate() {
        let original = cluster.create_db(&format!("pr_orig_{i}"));
        let rewritten = cluster.create_db(&format!("pr_plan_{i}"));
        let a = connect(&cluster.direct_conn(&original)).await;
        let b = connect(&cluster.direct_conn(&rewritten)).await;
        a.batch_execute(SETUP).await.unwrap();
        b.batch_execute(SETUP).await.unwrap();
        a.batch_execute(sql).await.unwrap();
        let plan = plan_for(sql);
        run_plan(&b, &plan).await;
        if sql.contains("DETACH") {
            // The one documented difference: a concurrent detach leaves a
            // CHECK constraint with the old bound on the detached table.
            b.batch_execute("ALTER TABLE m1 DROP CONSTRAINT m1_k_check")
                .await
                .expect("DETACH ... CONCURRENTLY leaves the bound as a CHECK");
        }
        if *again {
            // A retry of the same plan after it (or a step of it) ran
            // must finish without error.
            run_plan(&b, &plan).await;
        }
        assert_eq!(
            schema(cluster, &original),
            schema(cluster, &rewritten),
            "{sql}: the rewrite leaves a different schema; plan: {plan:#?}"
        );
        let invalid: i64 = b
            .query_one("SELECT count(*) FROM pg_index WHERE NOT indisvalid", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(invalid, 0, "{sql}: an invalid index is left");
        drop((a, b));
        cluster.psql_admin(&format!("DROP DATABASE {original} WITH (FORCE)"));
        cluster.psql_admin(&format!("DROP DATABASE {rewritten} WITH (FORCE)"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_index_from_a_failed_build_is_dropped_and_rebuilt() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("pr_invalid");
    let c = connect(&cluster.direct_conn(&db)).await;
    c.batch_execute("CREATE TABLE t (a int); INSERT INTO t VALUES (1), (1);")
        .await
        .unwrap();
    // A concurrent unique build fails on the duplicate and leaves an invalid index.
    assert!(c
        .batch_execute("CREATE UNIQUE INDEX CONCURRENTLY t_a_key ON t (a)")
        .await
        .is_err());
    c.batch_execute("DELETE FROM t WHERE ctid = (SELECT max(ctid) FROM t)")
        .await
        .unwrap();
    run_plan(&c, &plan_for("CREATE UNIQUE INDEX t_a_key ON t (a)")).await;
    let valid: bool = c
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_a_key'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(valid, "the plan left the invalid index in place");
}
