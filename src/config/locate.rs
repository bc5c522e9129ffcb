//! Where a problem is in the file: each problem starts with the key path it is about
//! (`sources[0].destinations[1].timeout: ...`), looked up in the parsed document's spans.

use std::fmt;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A line and a column of the file, both counted from 1 (the column in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Where `problem` points: its key if the file has it, else the nearest table or array
/// entry around where it belongs (a required key that is missing points at its table);
/// `None` for a top-level key the file lacks.
pub fn locate(text: &str, document: &Spanned<DeTable<'_>>, problem: &str) -> Option<Location> {
    let (path, _) = problem.split_once(": ")?;
    let mut best = None;
    let mut here: Option<&DeValue<'_>> = None;
    let mut table = Some(document.get_ref());
    for segment in segments(path)? {
        let found: Option<&Spanned<DeValue<'_>>> = match segment {
            Segment::Key(name) => table
                .and_then(|t| t.iter().find(|(key, _)| key.get_ref() == name))
                .map(|(key, value)| {
                    best = Some(key.span().start);
                    value
                }),
            Segment::Index(index) => here
                .and_then(DeValue::as_array)
                .and_then(|items| items.get(index))
                .inspect(|item| best = Some(item.span().start)),
        };
        let Some(found) = found else { break };
        here = Some(found.get_ref());
        table = found.get_ref().as_table();
    }
    best.map(|offset| location(text, offset))
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// `a.b[0][1].c` as keys and indexes; `None` when `path` is not a key path at all.
fn segments(path: &str) -> Option<Vec<Segment<'_>>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (name, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        let is_key = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !is_key {
            return None;
        }
        out.push(Segment::Key(name));
        while let Some(inner) = rest.strip_prefix('[') {
            let (index, after) = inner.split_once(']')?;
            out.push(Segment::Index(index.parse().ok()?));
            rest = after;
        }
        if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

fn location(text: &str, offset: usize) -> Location {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Location {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

/// One thing wrong with the configuration, and where in the file it is when it is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub location: Option<Location>,
    /// Starts with the key path it is about: `sources[0].max_body: "huge" is not a size`.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(at) => write!(f, "{at}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}
