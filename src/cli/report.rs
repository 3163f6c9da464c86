//! `ddlguard report dependents`: asks a running proxy who depends on an
//! object and prints the answer as a table or as JSON.

use crate::admin::client::{self, ClientError, DependentRow};
use crate::admin::table;
use crate::usage::dependents::Target;
use thiserror::Error;

/// Why the report could not be printed.
#[derive(Debug, Error)]
pub enum ReportError {
    /// The proxy did not answer as the contract says.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The rows could not be written as JSON.
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Runs `report dependents TARGET` against the proxy at `http` and prints
/// the rows (the token comes from [`client::TOKEN_ENV`]).
pub fn dependents(
    http: &str,
    target: &str,
    since: Option<&str>,
    json: bool,
) -> Result<(), ReportError> {
    let t = Target::parse_dotted(target);
    let rows = client::dependents(&client::Api::new(http), &t, since)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", dependents_text(&t, &rows));
    }
    Ok(())
}

/// The human-readable answer: a sentence, then a table of the rows.
pub fn dependents_text(t: &Target, rows: &[DependentRow]) -> String {
    let what = match &t.column {
        Some(c) => format!("{}.{}.{c}", t.schema, t.table),
        None => format!("{}.{}", t.schema, t.table),
    };
    if rows.is_empty() {
        return format!("no client depended on {what} in the window\n");
    }
    let header = [
        "application_name",
        "user",
        "database",
        "client_addr",
        "dependency",
        "calls",
        "last_seen",
        "fingerprint",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.application_name.clone(),
                r.user.clone(),
                r.database.clone(),
                r.client_addr.clone(),
                r.dependency.clone(),
                r.calls.to_string(),
                r.last_seen.clone(),
                r.fingerprint.clone(),
            ]
        })
        .collect();
    format!(
        "{} client(s) depended on {what}:\n{}",
        rows.len(),
        table::render(&header, &cells)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(app: &str, calls: u64) -> DependentRow {
        DependentRow {
            application_name: app.into(),
            user: "u".into(),
            database: "d".into(),
            client_addr: "10.0.0.1".into(),
            dependency: "explicit".into(),
            calls,
            first_seen: "2026-01-01T00:00:00Z".into(),
            last_seen: "2026-01-01T00:01:00Z".into(),
            fingerprint: "f1".into(),
        }
    }

    #[test]
    fn the_answer_names_the_object_then_tabulates_the_clients() {
        let t = Target::parse_dotted("users.email");
        let text = dependents_text(&t, &[row("billing", 3)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "1 client(s) depended on public.users.email:");
        assert!(
            lines[1].starts_with("application_name | user | database"),
            "{text}"
        );
        assert!(
            lines[3].starts_with("billing          | u    | d"),
            "{text}"
        );
        assert_eq!(
            dependents_text(&t, &[]),
            "no client depended on public.users.email in the window\n"
        );
    }
}
