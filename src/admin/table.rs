//! A plain-text table for the command line: columns padded to their widest
//! cell, separated by ` | `, with a dashed rule under the header.

/// Renders `header` and `rows` as lines of text, each ending in a newline.
/// A row shorter than the header leaves its last columns empty.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, String::len))
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cols: Vec<&str>| {
        cols.iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    out.push_str(
        &widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-"),
    );
    out.push('\n');
    for r in rows {
        let cols = (0..header.len())
            .map(|i| r.get(i).map_or("", String::as_str))
            .collect();
        out.push_str(&line(cols));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_to_the_widest_cell() {
        let rows = vec![
            vec!["billing".to_string(), "3".to_string()],
            vec!["api".to_string(), "12345".to_string()],
        ];
        let text = render(&["application_name", "calls"], &rows);
        assert_eq!(
            text,
            "application_name | calls\n\
             -----------------+------\n\
             billing          | 3    \n\
             api              | 12345\n"
        );
    }
}
