//! Who a client is, for usage reports.

use std::fmt;

/// The identity usage is recorded under (DESIGN section 5).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientIdentity {
    /// `application_name` (startup parameter, or the last `SET` the server reported).
    pub application_name: String,
    /// Login role.
    pub user: String,
    /// Database.
    pub database: String,
    /// Client IP address (without port: one application, many sockets).
    pub client_addr: String,
}

impl fmt::Display for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}/{} from {}",
            if self.application_name.is_empty() {
                "(no application_name)"
            } else {
                &self.application_name
            },
            self.user,
            self.database,
            self.client_addr
        )
    }
}

/// An identity for unit tests: `app` as application_name, fixed user,
/// database and address.
#[cfg(test)]
pub(crate) fn test_identity(app: &str) -> ClientIdentity {
    ClientIdentity {
        application_name: app.into(),
        user: "u".into(),
        database: "d".into(),
        client_addr: "127.0.0.1".into(),
    }
}
