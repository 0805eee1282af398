//! Tables, JSON and YAML as `kubectl` prints them, and colour only where a
//! person reads it (a terminal, and `NO_COLOR` unset).

use std::io::{IsTerminal, Write};

use serde::Serialize;

use crate::CliError;

/// `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Columns.
    Table,
    /// More columns.
    Wide,
    /// The object(s) as JSON (a `List` for several).
    Json,
    /// The object(s) as YAML (a `List` for several).
    Yaml,
    /// `KIND/NAME` only.
    Name,
}

/// Whether to colour stdout.
pub fn colour() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// `word` coloured by what it says, when `colour` holds.
pub fn paint(word: &str, colour: bool) -> String {
    if !colour {
        return word.to_owned();
    }
    let code = match word {
        "Synced" | "Healthy" | "Succeeded" | "True" => "32",
        "OutOfSync" | "Progressing" | "Running" | "Suspended" => "33",
        "Degraded" | "Failed" | "Missing" | "False" => "31",
        _ => return word.to_owned(),
    };
    format!("\x1b[{code}m{word}\x1b[0m")
}

/// Print `rows` under `header`, columns padded to their widest cell
/// (escape codes do not count).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> Result<(), CliError> {
    let width = |cell: &str| visible_width(cell);
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(width(cell));
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.into_iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i].saturating_sub(width(cell)) + 3;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    write_out(&out)
}

fn visible_width(cell: &str) -> usize {
    let mut width = 0;
    let mut escape = false;
    for c in cell.chars() {
        match (escape, c) {
            (false, '\x1b') => escape = true,
            (true, 'm') => escape = false,
            (true, _) => {}
            (false, _) => width += 1,
        }
    }
    width
}

/// Print `value` as JSON or YAML.
pub fn document(value: &impl Serialize, format: Format) -> Result<(), CliError> {
    let text = match format {
        Format::Yaml => {
            serde_saphyr::to_string(value).map_err(|e| CliError::Output(e.to_string()))?
        }
        _ => {
            let mut text =
                serde_json::to_string_pretty(value).map_err(|e| CliError::Output(e.to_string()))?;
            text.push('\n');
            text
        }
    };
    write_out(&text)
}

/// Several objects as kubectl prints them: a `v1` `List`.
pub fn list_document(items: Vec<serde_json::Value>, format: Format) -> Result<(), CliError> {
    document(
        &serde_json::json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}),
        format,
    )
}

/// `text` without the control characters a terminal would act on: what
/// the cluster or a repository wrote (a render error, a condition message,
/// a diff) must not move the cursor, retitle the window or hide lines.
/// Newlines, tabs and colour codes (`ESC [ digits ; m`) stay.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            let params: String = chars
                .clone()
                .skip(1)
                .take_while(|c| c.is_ascii_digit() || *c == ';')
                .collect();
            if chars.clone().nth(1 + params.len()) == Some('m') {
                out.push_str("\x1b[");
                out.push_str(&params);
                out.push('m');
                for _ in 0..params.len() + 2 {
                    chars.next();
                }
                continue;
            }
        }
        if c.is_control() && c != '\n' && c != '\t' {
            out.push('\u{fffd}');
        } else {
            out.push(c);
        }
    }
    out
}

/// Write `text` to stdout (see [`clean`]); a closed pipe (`| head`) is not
/// an error.
pub fn write_out(text: &str) -> Result<(), CliError> {
    let text = clean(text);
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::Output(error.to_string()))
        }
        _ => Ok(()),
    }
}

/// An age as kubectl shows it: `45s`, `12m`, `5h`, `3d`.
pub fn age(since: Option<&jiff::Timestamp>, now: jiff::Timestamp) -> String {
    let Some(since) = since else {
        return "<unknown>".to_owned();
    };
    let seconds = now.duration_since(*since).as_secs().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_kubectls() {
        let now: jiff::Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();
        for (ago, shown) in [
            (5, "5s"),
            (119, "119s"),
            (600, "10m"),
            (7300, "2h"),
            (200_000, "2d"),
        ] {
            let since = now - jiff::SignedDuration::from_secs(ago);
            assert_eq!(age(Some(&since), now), shown);
        }
        assert_eq!(age(None, now), "<unknown>");
    }

    #[test]
    fn what_the_cluster_wrote_cannot_drive_the_terminal() {
        let hostile = "render failed\x1b]0;owned\x07\x1b[2J\rfake line\x1b[31mred\x1b[0m\n\tok";
        let shown = clean(hostile);
        assert!(
            !shown.contains("\x1b]") && !shown.contains("\x1b[2J") && !shown.contains('\r'),
            "{shown:?}"
        );
        assert!(shown.contains("\x1b[31mred\x1b[0m\n\tok"), "{shown:?}");
        assert_eq!(clean(&paint("Synced", true)), paint("Synced", true));
    }

    #[test]
    fn colour_codes_do_not_count_towards_widths() {
        assert_eq!(visible_width(&paint("Synced", true)), 6);
        assert_eq!(paint("Synced", false), "Synced");
    }
}
