//! Reports on usage: the dependents query shared by every front end, and the
//! HTTP API (DESIGN section 7).

pub mod dependents;
pub mod http;
