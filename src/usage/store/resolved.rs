//! The resolved tables and columns stored with each usage row, as JSON
//! text: `[{"r":[["public","users"]],"c":"email","m":"r","d":"e"}]`. A
//! use with one relation is resolved; one with several keeps its
//! candidates apart (never joined into one name).

use crate::analysis::{Dependency, Mode, QualifiedName, ResolvedUse};
use serde_json::{json, Value};

/// The text stored for `uses`; `""` for none known.
pub fn encode(uses: Option<&[ResolvedUse]>) -> String {
    let Some(uses) = uses else {
        return String::new();
    };
    let list: Vec<Value> = uses
        .iter()
        .map(|u| {
            json!({
                "r": u.relations.iter().map(|r| [&r.schema, &r.name]).collect::<Vec<_>>(),
                "c": u.column,
                "m": match u.mode { Mode::Read => "r", Mode::Write => "w" },
                "d": match u.dependency { Dependency::Explicit => "e", Dependency::Implicit => "i" },
            })
        })
        .collect();
    Value::Array(list).to_string()
}

/// Inverse of [`encode`]; `None` for `""` and for text it cannot read
/// (the row is then resolved with the catalog, as rows of older stores).
pub fn decode(text: &str) -> Option<Vec<ResolvedUse>> {
    if text.is_empty() {
        return None;
    }
    let list: Vec<Value> = serde_json::from_str(text).ok()?;
    list.iter().map(use_of).collect()
}

fn use_of(v: &Value) -> Option<ResolvedUse> {
    let relations = v
        .get("r")?
        .as_array()?
        .iter()
        .map(|pair| {
            let pair = pair.as_array()?;
            Some(QualifiedName {
                schema: pair.first()?.as_str()?.to_string(),
                name: pair.get(1)?.as_str()?.to_string(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let column = match v.get("c")? {
        Value::Null => None,
        c => Some(c.as_str()?.to_string()),
    };
    let mode = match v.get("m")?.as_str()? {
        "r" => Mode::Read,
        "w" => Mode::Write,
        _ => return None,
    };
    let dependency = match v.get("d")?.as_str()? {
        "e" => Dependency::Explicit,
        "i" => Dependency::Implicit,
        _ => return None,
    };
    Some(ResolvedUse {
        relations,
        column,
        mode,
        dependency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_round_trip_and_bad_text_reads_as_unknown() {
        let name = |s: &str, n: &str| QualifiedName {
            schema: s.into(),
            name: n.into(),
        };
        let uses = vec![
            ResolvedUse {
                relations: vec![name("public", "users")],
                column: Some("email".into()),
                mode: Mode::Read,
                dependency: Dependency::Explicit,
            },
            ResolvedUse {
                relations: vec![name("a", "t|x"), name("b", "\"q\"")],
                column: None,
                mode: Mode::Write,
                dependency: Dependency::Implicit,
            },
        ];
        assert_eq!(decode(&encode(Some(&uses))), Some(uses));
        assert_eq!(encode(None), "");
        assert_eq!(decode(""), None);
        assert_eq!(decode("[{\"r\": 3}]"), None);
        assert_eq!(decode("not json"), None);
    }
}
