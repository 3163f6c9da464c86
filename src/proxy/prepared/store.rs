//! The shape memory: each named prepared statement of a session with the
//! text and parameter types it was parsed with and the result shape the
//! server described for it. Bounded per session in count and bytes; a
//! statement past the bound is simply not remembered (its errors pass
//! through as they would without the proxy).

use crate::wire::messages::{self, FieldDesc};

/// Statement names are hashed on every Bind: a fast non-cryptographic
/// hasher (names come from the session's own client).
type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

/// At most this many named statements are remembered per session.
pub const MAX_STATEMENTS: usize = 512;
/// At most this many bytes (texts, types, shapes) are remembered per session.
pub const MAX_BYTES: usize = 256 * 1024;

/// One remembered named statement.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The text it was parsed with (after a recovery: the pinned text).
    pub sql: String,
    /// The raw parameter type section of its Parse.
    pub param_types: Vec<u8>,
    /// The RowDescription body the server described it with, once seen.
    pub shape: Option<Vec<u8>>,
    /// The ParameterDescription body of a Describe of the statement.
    pub params: Option<Vec<u8>>,
    /// Re-prepared by the proxy: the client still runs the shape it had
    /// before a schema change.
    pub old: bool,
}

impl Statement {
    fn bytes(&self, name: &[u8]) -> usize {
        name.len()
            + self.sql.len()
            + self.param_types.len()
            + self.shape.as_ref().map_or(0, Vec::len)
            + self.params.as_ref().map_or(0, Vec::len)
    }
}

/// The named statements of one session.
#[derive(Debug, Default)]
pub struct Store {
    statements: HashMap<Vec<u8>, Statement>,
    bytes: usize,
}

impl Store {
    /// True when no named statement is remembered (the hooks then cost
    /// nothing).
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// The statement called `name`.
    pub fn get(&self, name: &[u8]) -> Option<&Statement> {
        self.statements.get(name)
    }

    /// Remembers a Parse of `name` (forget what the name held before
    /// first); false when it is past the bounds or not UTF-8.
    pub fn parsed(&mut self, name: &[u8], sql: &[u8], param_types: &[u8]) -> bool {
        let Ok(sql) = std::str::from_utf8(sql) else {
            return false;
        };
        let statement = Statement {
            sql: sql.to_string(),
            param_types: param_types.to_vec(),
            shape: None,
            params: None,
            old: false,
        };
        let size = statement.bytes(name);
        let room = self.statements.len() < MAX_STATEMENTS && self.bytes + size <= MAX_BYTES;
        if room {
            self.bytes += size;
            self.statements.insert(name.to_vec(), statement);
        }
        room
    }

    /// Forgets `name` (Close, DEALLOCATE).
    pub fn forget(&mut self, name: &[u8]) -> Option<Statement> {
        let s = self.statements.remove(name)?;
        self.bytes -= s.bytes(name);
        Some(s)
    }

    /// Forgets every statement (DISCARD ALL, DEALLOCATE ALL); returns how
    /// many of them ran an old shape.
    pub fn clear(&mut self) -> u64 {
        let old = self.statements.values().filter(|s| s.old).count() as u64;
        self.statements.clear();
        self.bytes = 0;
        old
    }

    /// Records the RowDescription (`shape`) or ParameterDescription
    /// (`params`) the server sent for `name`, within the byte bound.
    pub fn described(&mut self, name: &[u8], shape: Option<&[u8]>, params: Option<&[u8]>) {
        let room = MAX_BYTES.saturating_sub(self.bytes);
        let Some(s) = self.statements.get_mut(name) else {
            return;
        };
        let add = shape.map_or(0, <[u8]>::len) + params.map_or(0, <[u8]>::len);
        if add > room {
            return;
        }
        if let Some(shape) = shape.filter(|_| s.shape.is_none()) {
            s.shape = Some(shape.to_vec());
            self.bytes += shape.len();
        }
        if let Some(params) = params.filter(|_| s.params.is_none()) {
            s.params = Some(params.to_vec());
            self.bytes += params.len();
        }
    }

    /// After a recovery: `name` now runs `sql`, pinned to its old shape.
    /// Returns true when it was not marked old before.
    pub fn pinned(&mut self, name: &[u8], sql: String) -> bool {
        let Some(s) = self.statements.get_mut(name) else {
            return false;
        };
        self.bytes = self.bytes + sql.len() - s.sql.len();
        s.sql = sql;
        !std::mem::replace(&mut s.old, true)
    }
}

/// True when two RowDescription bodies name the same columns, in the same
/// order, with the same types: name, table and column number, type OID,
/// size and modifier. Format codes are left out: a Describe of a
/// statement always says text, the client's Bind chooses the formats.
pub fn same_shape(a: &[u8], b: &[u8]) -> bool {
    fn key(f: FieldDesc<'_>) -> (&[u8], u32, i16, u32, i16, i32) {
        (
            f.name,
            f.table_oid,
            f.column,
            f.type_oid,
            f.type_len,
            f.typmod,
        )
    }
    let (mut x, mut y) = (messages::row_fields(a), messages::row_fields(b));
    let same = x.by_ref().map(key).eq(y.by_ref().map(key));
    same && x.complete() && y.complete()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::row_description_body as shape;

    #[test]
    fn shapes_compare_column_by_column() {
        let old = shape(&[("id", 1, 1, 23), ("v", 1, 2, 25)]);
        assert!(same_shape(&old, &old.clone()));
        assert!(!same_shape(
            &old,
            &shape(&[("id", 1, 1, 23), ("v", 1, 2, 25), ("c", 1, 3, 23)])
        ));
        assert!(!same_shape(
            &old,
            &shape(&[("id", 1, 1, 23), ("v", 1, 2, 23)])
        ));
        assert!(!same_shape(
            &old,
            &shape(&[("v", 1, 2, 25), ("id", 1, 1, 23)])
        ));
        assert!(!same_shape(&old, &old[..old.len() - 1]));
    }

    #[test]
    fn the_store_is_bounded_and_frees_what_it_forgets() {
        let mut store = Store::default();
        for i in 0..MAX_STATEMENTS + 10 {
            store.parsed(format!("s{i}").as_bytes(), b"SELECT 1", &[0, 0]);
        }
        assert_eq!(store.statements.len(), MAX_STATEMENTS);
        assert!(store.get(b"s0").is_some());
        assert!(store.get(format!("s{MAX_STATEMENTS}").as_bytes()).is_none());
        store.described(b"s0", Some(&[0, 0]), None);
        assert!(store.pinned(b"s0", "SELECT 1 ".into()));
        assert!(!store.pinned(b"s0", "SELECT 1 ".into()));
        assert!(store.forget(b"s1").is_some());
        assert_eq!(store.clear(), 1);
        assert_eq!(store.bytes, 0);
        let big = vec![b'x'; MAX_BYTES];
        store.parsed(b"big", &big, &[0, 0]);
        assert!(store.is_empty());
    }
}
