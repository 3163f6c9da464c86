//! The migration scenario, shared by the console and HTTP tests.

use tokio_postgres::Client;

/// Renames `users.email` directly on Postgres (`direct`), then runs A's
/// usual query through the proxy (`a`) and checks it now fails with 42703:
/// the error the reports must attribute to A.
pub async fn rename_email_and_break(direct: &Client, a: &Client) {
    direct
        .batch_execute("ALTER TABLE users RENAME COLUMN email TO email_address")
        .await
        .unwrap();
    let err = a
        .query("SELECT email FROM users WHERE id = $1", &[&1i32])
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42703");
}
