//! The analysis hot path (DESIGN section 5): a full parse + walk for a new
//! shape, and the fingerprint + cache hit every repeated shape costs.
//!
//! cargo bench --bench analysis

use criterion::{criterion_group, criterion_main, Criterion};
use ddlguard::analysis::{analyze_uncached, fingerprint, Analyzer};
use std::hint::black_box;

const PK_LOOKUP: &str = "SELECT \"users\".* FROM \"users\" WHERE \"users\".\"id\" = 42 LIMIT 1";

const ORM_JOIN: &str = r#"SELECT
    "orders"."id" AS "orders_id",
    "orders"."user_id" AS "orders_user_id",
    "orders"."status" AS "orders_status",
    "orders"."total" AS "orders_total",
    "orders"."created_at" AS "orders_created_at",
    "users_1"."id" AS "users_1_id",
    "users_1"."email" AS "users_1_email",
    "users_1"."name" AS "users_1_name",
    "line_items_1"."id" AS "line_items_1_id",
    "line_items_1"."quantity" AS "line_items_1_quantity",
    "line_items_1"."price" AS "line_items_1_price",
    "products_1"."id" AS "products_1_id",
    "products_1"."sku" AS "products_1_sku",
    "products_1"."name" AS "products_1_name"
FROM "orders"
    JOIN "users" AS "users_1" ON "users_1"."id" = "orders"."user_id"
    LEFT OUTER JOIN "line_items" AS "line_items_1" ON "orders"."id" = "line_items_1"."order_id"
    LEFT OUTER JOIN "products" AS "products_1" ON "products_1"."id" = "line_items_1"."product_id"
WHERE "orders"."status" IN ('paid', 'shipped', 'delivered')
    AND "orders"."created_at" >= '2026-01-01 00:00:00'
    AND "users_1"."org_id" = 1234
    AND ("users_1"."active" = true OR "orders"."total" > 1000.50)
ORDER BY "orders"."created_at" DESC, "orders"."id" DESC
LIMIT 50 OFFSET 100"#;

const ALTER: &str = "ALTER TABLE users ADD COLUMN phone_number varchar(32) NOT NULL DEFAULT ''";

fn bench(c: &mut Criterion) {
    for (name, sql) in [
        ("pk_lookup", PK_LOOKUP),
        ("orm_join_25_lines", ORM_JOIN),
        ("alter_table", ALTER),
    ] {
        c.bench_function(&format!("uncached/{name}"), |b| {
            b.iter(|| analyze_uncached(black_box(sql), fingerprint(black_box(sql))))
        });
        c.bench_function(&format!("fingerprint/{name}"), |b| {
            b.iter(|| fingerprint(black_box(sql)))
        });
        let analyzer = Analyzer::new(1024);
        analyzer.analyze(sql);
        c.bench_function(&format!("cached/{name}"), |b| {
            b.iter(|| analyzer.analyze(black_box(sql)))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
