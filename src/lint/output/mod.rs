//! The four output formats of `ddlguard lint`.

pub mod github;
pub mod json;
pub mod sarif;
pub mod text;

use super::args::Format;
use super::model::Outcome;

/// The whole output of a run in `format`.
pub fn render(format: Format, outcome: &Outcome) -> String {
    match format {
        Format::Text => text::render(outcome),
        Format::Json => json::render(outcome),
        Format::Github => github::render(outcome),
        Format::Sarif => sarif::render(outcome),
    }
}
