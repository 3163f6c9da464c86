//! The catalog snapshot: schemas, tables, columns and row estimates of the
//! upstream, used to resolve unqualified and ambiguous column names.

mod model;

pub use model::{Catalog, Column, Table};
