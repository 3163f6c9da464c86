//! Verifiers read from the upstream through the service login with
//! `auth.query` (PgBouncer's `auth_query`), cached per user for
//! `auth.cache_ttl` and read again after a failed login.

use super::secret::{self, Secret};
use super::settings::AuthConfig;
use crate::catalog::snapshot::{self, CatalogError, ServiceConn};
use crate::catalog::ServiceLogin;
use crate::net::upstream::Upstream;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::{debug, warn};

/// The one-time SQL, run as a superuser in `auth.database`, that lets the
/// service login `service_user` read verifiers without being a superuser.
pub fn lookup_sql(service_user: &str) -> String {
    let role = quote_ident(service_user);
    format!(
        "CREATE SCHEMA IF NOT EXISTS ddlguard;
CREATE OR REPLACE FUNCTION ddlguard.user_lookup(i_username text, OUT usename text, OUT passwd text)
RETURNS record LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
  SELECT rolname::text, rolpassword::text FROM pg_authid
  WHERE rolname = i_username AND rolcanlogin AND (rolvaliduntil IS NULL OR rolvaliduntil > now())
$$;
REVOKE ALL ON FUNCTION ddlguard.user_lookup(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA ddlguard TO {role};
GRANT EXECUTE ON FUNCTION ddlguard.user_lookup(text) TO {role};"
    )
}

fn quote_ident(name: &str) -> String {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
    {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// How long sessions are relayed without asking again after the
/// verifiers could not be read.
const RETRY_UNAVAILABLE: std::time::Duration = std::time::Duration::from_secs(5);

/// What the lookup says about one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The stored verifier.
    Found(Secret),
    /// The role exists and may log in but has no (usable) password: only
    /// the upstream can decide (trust, cert), so the exchange is relayed.
    NoPassword,
    /// No such login role.
    Unknown,
    /// Verifiers cannot be read now (no service login, no lookup
    /// function, upstream down); the text says what to do.
    Unavailable(String),
}

/// Where verifiers are read: the `[auth]` settings, the upstream and the
/// service login of the session's configuration.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    /// `[auth]`.
    pub config: &'a AuthConfig,
    /// The upstream the service login connects to.
    pub upstream: &'a Upstream,
    /// `[upstream] user` / `password_env`, if set.
    pub login: Option<&'a ServiceLogin>,
}

/// The verifier cache and the service connection it reads through.
pub struct Verifiers {
    cache: Mutex<HashMap<String, (Instant, Lookup)>>,
    conn: tokio::sync::Mutex<Option<Arc<ServiceConn>>>,
    /// The last "cannot read verifiers" reason logged, so it is logged at
    /// `warn` once per change rather than per session.
    last_problem: Mutex<Option<String>>,
    /// While verifiers cannot be read, sessions do not each try again:
    /// until this instant the last reason is answered at once.
    retry_at: Mutex<Option<Instant>>,
    /// Key of the mock verifiers of unknown users.
    pub mock_key: Vec<u8>,
}

impl Default for Verifiers {
    fn default() -> Self {
        Verifiers {
            cache: Mutex::new(HashMap::new()),
            conn: tokio::sync::Mutex::new(None),
            last_problem: Mutex::new(None),
            retry_at: Mutex::new(None),
            mock_key: super::scram::random(32).unwrap_or_else(|| b"ddlguard-mock".to_vec()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Verifiers {
    /// The verifier of `user`: from the cache while younger than
    /// `auth.cache_ttl`, else read through the service login.
    pub async fn get(&self, user: &str, source: &Source<'_>) -> Lookup {
        if let Some((at, found)) = lock(&self.cache).get(user) {
            if at.elapsed() < source.config.cache_ttl.0 {
                return found.clone();
            }
        }
        if let Some(at) = *lock(&self.retry_at) {
            if Instant::now() < at {
                if let Some(why) = lock(&self.last_problem).clone() {
                    return Lookup::Unavailable(why);
                }
            }
        }
        let found = self.read(user, source).await;
        match &found {
            Lookup::Found(_) | Lookup::NoPassword => {
                lock(&self.cache).insert(user.to_string(), (Instant::now(), found.clone()));
                *lock(&self.last_problem) = None;
                *lock(&self.retry_at) = None;
            }
            Lookup::Unknown => {
                lock(&self.cache).remove(user);
            }
            Lookup::Unavailable(why) => {
                *lock(&self.retry_at) = Some(Instant::now() + RETRY_UNAVAILABLE);
                let mut last = lock(&self.last_problem);
                if last.as_deref() != Some(why.as_str()) {
                    warn!("{why}");
                    *last = Some(why.clone());
                } else {
                    debug!("{why}");
                }
            }
        }
        found
    }

    /// Drops `user`'s cached verifier (after a failed login), so the next
    /// login reads it again.
    pub fn forget(&self, user: &str) {
        lock(&self.cache).remove(user);
    }

    /// Drops every cached verifier and the service connection (the lookup
    /// or upstream settings changed).
    pub fn clear(&self) {
        lock(&self.cache).clear();
        *lock(&self.retry_at) = None;
        if let Ok(mut conn) = self.conn.try_lock() {
            *conn = None;
        }
    }

    async fn read(&self, user: &str, source: &Source<'_>) -> Lookup {
        let Source {
            config,
            upstream,
            login,
        } = *source;
        let Some(login) = login else {
            return Lookup::Unavailable(format!(
                "auth.mode = \"proxy\" needs the service login to read verifiers: set [upstream] user (and password_env), then run once as a superuser in database {:?}:\n{}\nUntil then sessions are relayed as in auth.mode = \"passthrough\"",
                config.database,
                lookup_sql("ddlguard")
            ));
        };
        let conn = match self.connection(config, upstream, login).await {
            Ok(conn) => conn,
            Err(e) => {
                return Lookup::Unavailable(format!(
                    "auth.mode = \"proxy\": cannot open the service login {:?} to database {:?} to read verifiers ({e}). If the role is missing, create it once as a superuser: CREATE ROLE {} LOGIN PASSWORD '...'; (the password goes in the variable upstream.password_env names), then run:\n{}\nMeanwhile sessions are relayed as in auth.mode = \"passthrough\"",
                    login.user,
                    config.database,
                    quote_ident(&login.user),
                    lookup_sql(&login.user)
                ))
            }
        };
        match conn.client().query(config.query.as_str(), &[&user]).await {
            Ok(rows) => {
                let Some(row) = rows.first() else {
                    return Lookup::Unknown;
                };
                let name: Option<String> = row.try_get(0).ok().flatten();
                let password: Option<String> = row.try_get(1).ok().flatten();
                match (name, password) {
                    (None, _) => Lookup::Unknown,
                    (Some(_), None) => Lookup::NoPassword,
                    (Some(_), Some(p)) => match secret::parse(&p) {
                        Ok(s) => Lookup::Found(s),
                        Err(e) => {
                            warn!(user, "stored password unusable by auth.mode = \"proxy\": {e}; the exchange is relayed to the upstream");
                            Lookup::NoPassword
                        }
                    },
                }
            }
            Err(e) => {
                if conn.client().is_closed() {
                    *self.conn.lock().await = None;
                }
                let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
                let fix = if matches!(code.as_str(), "42883" | "3F000" | "42P01" | "42501") {
                    format!(
                        " Run once as a superuser in database {:?}:\n{}",
                        config.database,
                        lookup_sql(&login.user)
                    )
                } else {
                    String::new()
                };
                Lookup::Unavailable(format!(
                    "auth.mode = \"proxy\": the verifier lookup (auth.query) failed as {:?} in database {:?}: {}.{fix}\nUntil it works, sessions are relayed as in auth.mode = \"passthrough\"",
                    login.user,
                    config.database,
                    e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string())
                ))
            }
        }
    }

    async fn connection(
        &self,
        config: &AuthConfig,
        upstream: &Upstream,
        login: &ServiceLogin,
    ) -> Result<Arc<ServiceConn>, CatalogError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| c.is_open()) {
            return Ok(conn.clone());
        }
        let conn = Arc::new(snapshot::connect(upstream, login, &config.database).await?);
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lookup_sql_names_the_service_login() {
        let sql = lookup_sql("ddlguard");
        assert!(sql.contains("GRANT EXECUTE ON FUNCTION ddlguard.user_lookup(text) TO ddlguard;"));
        assert!(lookup_sql("Svc").contains("TO \"Svc\";"));
        assert!(sql.contains("SECURITY DEFINER"));
    }

    #[test]
    fn the_readme_shows_the_lookup_sql_as_the_proxy_logs_it() {
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&lookup_sql("ddlguard")),
            "README's Authentication SQL differs from lookup_sql()"
        );
        assert!(readme.contains(super::super::settings::DEFAULT_QUERY));
    }
}
