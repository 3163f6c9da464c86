//! `docs/rules.md`, rendered from the catalog so that the two cannot drift
//! (a test compares them; `DDLGUARD_BLESS=1 cargo test --lib rules_doc`
//! rewrites the file).

use super::catalog::RULES;
use super::rule::Category;

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The markdown of `docs/rules.md`.
pub fn render() -> String {
    let mut out = String::from(
        "# ddlguard rules\n\n\
         Generated from `src/policy/rules/` by `DDLGUARD_BLESS=1 cargo test --lib rules_doc`; do not edit by hand.\n\n\
         Rule ids are a contract: `[policy.rules]` in `proxy.toml` and CI scripts name them. \
         `proxy` rules guard traffic at the proxy; `advice` rules are `allow` at the proxy by default and are reported by `ddlguard lint`. \
         The default action applies in `mode = \"enforce\"`; `warn` turns blocks and rewrites into warnings, `observe` only records. \
         A statement may carry `-- ddlguard:allow RULE-ID reason` to pass one rule; it is recorded.\n\n\
         Blocks answer SQLSTATE 55000 with the rule id in the message, the reason in DETAIL and the safe alternative in HINT. \
         Rules about touching every row relax below `policy.small_table_rows` (catalog estimate) and on tables created earlier in the same transaction or session.\n\n",
    );
    out.push_str("| id | category | default | summary |\n|---|---|---|---|\n");
    for r in RULES {
        out.push_str(&format!(
            "| [`{id}`](#{id}) | {} | {} | {} |\n",
            r.category.as_str(),
            r.default.as_str(),
            cell(r.summary),
            id = r.id
        ));
    }
    for category in [Category::Proxy, Category::Advice] {
        out.push_str(match category {
            Category::Proxy => "\n## Proxy rules\n",
            Category::Advice => "\n## Advice rules\n",
        });
        for r in RULES.iter().filter(|r| r.category == category) {
            out.push_str(&format!(
                "\n### {}\n\n{}\n\n- **Lock:** {}\n- **Why it hurts:** {}\n- **Safe alternative:** {}\n- **Default action:** `{}`{}\n",
                r.id,
                r.summary,
                r.lock,
                r.why,
                r.alternative,
                r.default.as_str(),
                if r.can_rewrite { " (can rewrite)" } else { "" }
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_doc_matches_the_catalog() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/rules.md");
        let want = render();
        if std::env::var_os("DDLGUARD_BLESS").is_some() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).expect("create docs/");
            }
            std::fs::write(&path, &want).expect("write docs/rules.md");
            return;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/rules.md differs from the rule catalog; regenerate it with `DDLGUARD_BLESS=1 cargo test --lib rules_doc`"
        );
        for r in RULES {
            assert!(have.contains(&format!("### {}\n", r.id)), "{}", r.id);
        }
    }
}
