//! A [`Report`] as pgwire rows: typed columns in text or binary format.

use crate::admin::dependents::MAX_TIME_MS;
use crate::admin::report::{Cell, ColumnType, Report};
use bytes::BytesMut;
use pgwire::api::portal::Format;
use pgwire::api::results::{DataRowEncoder, FieldInfo};
use pgwire::api::Type;
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;
use pgwire::types::ToSqlText;
use postgres_types::{IsNull, ToSql};
use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A `timestamptz` value: binary through postgres-types, text as Postgres
/// prints it in ISO style (`2026-11-25 21:37:40.123+00`).
#[derive(Debug)]
struct PgTime(SystemTime);

impl ToSql for PgTime {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        self.0.to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <SystemTime as ToSql>::accepts(ty)
    }

    postgres_types::to_sql_checked!();
}

impl ToSqlText for PgTime {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        let iso = humantime::format_rfc3339_millis(self.0).to_string();
        let text = iso.replacen('T', " ", 1).replace('Z', "+00");
        out.extend_from_slice(text.as_bytes());
        Ok(IsNull::No)
    }
}

fn pg_type(t: ColumnType) -> Type {
    match t {
        ColumnType::Text => Type::TEXT,
        ColumnType::Int => Type::INT8,
        ColumnType::Float => Type::FLOAT8,
        ColumnType::Time => Type::TIMESTAMPTZ,
    }
}

/// The row description of `report` in the formats the client asked for.
pub fn fields(report: &Report, format: &Format) -> Vec<FieldInfo> {
    report
        .columns
        .iter()
        .enumerate()
        .map(|(i, (name, t))| {
            FieldInfo::new(
                (*name).to_string(),
                None,
                None,
                pg_type(*t),
                format.format_for(i),
            )
        })
        .collect()
}

/// Encodes every row of `report` against `schema` (from [`fields`]).
pub fn rows(report: &Report, schema: Arc<Vec<FieldInfo>>) -> Vec<PgWireResult<DataRow>> {
    let mut encoder = DataRowEncoder::new(schema);
    report
        .rows
        .iter()
        .map(|row| {
            for (cell, (_, t)) in row.iter().zip(&report.columns) {
                match (cell, t) {
                    (Cell::Null, ColumnType::Int) => encoder.encode_field(&None::<i64>)?,
                    (Cell::Null, ColumnType::Float) => encoder.encode_field(&None::<f64>)?,
                    (Cell::Null, _) => encoder.encode_field(&None::<String>)?,
                    (Cell::Text(s), _) => encoder.encode_field(s)?,
                    (Cell::Int(n), _) => encoder.encode_field(n)?,
                    (Cell::Float(f), _) => encoder.encode_field(f)?,
                    (Cell::Time(ms), _) => encoder.encode_field(&PgTime(
                        UNIX_EPOCH + Duration::from_millis((*ms).min(MAX_TIME_MS)),
                    ))?,
                }
            }
            Ok(encoder.take_row())
        })
        .collect()
}
