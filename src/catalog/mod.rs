//! The catalog snapshot: schemas, tables, columns and row estimates of the
//! upstream, used to resolve unqualified and ambiguous column names.

mod model;
pub mod refresh;
mod set;
pub mod snapshot;

pub use model::{Catalog, Column, RelationRef, Table, SYSTEM_SCHEMA, TEMP_SCHEMA};
pub use set::{Catalogs, ReloadStats};
pub use snapshot::{CatalogError, ServiceLogin};
