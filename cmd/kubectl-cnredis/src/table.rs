//! Plain-text tables: columns padded to their widest cell, two spaces apart, the way kubectl prints.
//! Colour is added after padding, so widths never count escape codes.

use std::fmt::Write as _;

/// A cell's emphasis, painted only on a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Good,
    Warn,
    Bad,
    Dim,
}

impl Tone {
    fn code(self) -> Option<&'static str> {
        match self {
            Tone::Plain => None,
            Tone::Good => Some("32"),
            Tone::Warn => Some("33"),
            Tone::Bad => Some("31"),
            Tone::Dim => Some("2"),
        }
    }
}

/// `text` in `tone` when `colour` is on.
pub fn paint(text: &str, tone: Tone, colour: bool) -> String {
    match (colour, tone.code()) {
        (true, Some(code)) => format!("\x1b[{code}m{text}\x1b[0m"),
        _ => text.to_string(),
    }
}

pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<(String, Tone)>>,
}

impl Table {
    pub fn new(header: Vec<&'static str>) -> Self {
        Self {
            header,
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<(String, Tone)>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self, colour: bool) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, (text, _)) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(text.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<(String, Tone)> = self.header.iter().map(|h| (h.to_string(), Tone::Plain)).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (text, tone)) in row.iter().enumerate().take(columns) {
                let last = i + 1 == columns;
                let pad = if last {
                    0
                } else {
                    widths[i] - text.chars().count() + 2
                };
                let _ = write!(line, "{}{}", paint(text, *tone, colour), " ".repeat(pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut table = Table::new(vec!["NAME", "ROLE"]);
        table.row(vec![
            ("a-long-name".into(), Tone::Plain),
            ("primary".into(), Tone::Good),
        ]);
        table.row(vec![("b".into(), Tone::Plain), ("".into(), Tone::Plain)]);
        assert_eq!(
            table.render(false),
            "NAME         ROLE\na-long-name  primary\nb\n"
        );
    }

    #[test]
    fn colour_does_not_change_the_padding() {
        let mut table = Table::new(vec!["A", "B"]);
        table.row(vec![("x".into(), Tone::Bad), ("y".into(), Tone::Plain)]);
        assert_eq!(table.render(true), "A  B\n\x1b[31mx\x1b[0m  y\n");
    }
}
