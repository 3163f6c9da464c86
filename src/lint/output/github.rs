//! GitHub Actions workflow commands: `::error file=...,line=...,col=...,title=...::message`.

use crate::lint::model::{Level, Outcome};

/// Escapes message data (`%`, CR, LF).
fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value (also `:` and `,`).
fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Renders the outcome as annotations (errors, warnings, notices).
pub fn render(o: &Outcome) -> String {
    let mut s = String::new();
    for f in &o.findings {
        let cmd = match f.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        let title = format!("ddlguard {}[{}]", f.action.as_str(), f.rule);
        s.push_str(&format!(
            "::{cmd} file={},line={},col={},title={}::{}\n",
            property(&f.file),
            f.line,
            f.column,
            property(&title),
            data(&format!("{}\nhint: {}", f.message, f.hint))
        ));
    }
    for n in &o.notes {
        s.push_str(&format!(
            "::notice file={},line={},col={},title={}::{}\n",
            property(&n.file),
            n.line,
            n.column,
            property(&format!("ddlguard {}", n.kind.as_str())),
            data(&n.message)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_the_runner_would_misread() {
        assert_eq!(data("50% done\nnext"), "50%25 done%0Anext");
        assert_eq!(property("a:b,c"), "a%3Ab%2Cc");
    }
}
