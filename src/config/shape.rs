//! The file's shape: which keys exist and what type each value has. serde stops at the first
//! mismatch, so each one is reported, its value taken out, and the rest read again: a file with
//! three typos gets three problems, not one.

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;
use std::collections::BTreeSet;
use toml::Value;

/// At most this many mismatches are reported before giving up on the file's shape.
const MAX_MISMATCHES: usize = 50;

/// Reads `value` as `T`, adding a problem for every unknown key and every value of the wrong
/// type. `None` when a mismatch cannot be taken out (a missing required key, a wrong type
/// inside an array) or there are too many; the problems say why.
pub(super) fn read<T: DeserializeOwned>(mut value: Value, problems: &mut Vec<String>) -> Option<T> {
    let mut unknown = BTreeSet::new();
    let mut ignored = |path: serde_ignored::Path<'_>| {
        unknown.insert(key_path(&path));
    };
    for _ in 0..MAX_MISMATCHES {
        let tracked = serde_ignored::Deserializer::new(value.clone(), &mut ignored);
        let result = serde_path_to_error::deserialize::<_, T>(tracked);
        match result {
            Ok(raw) => {
                report_unknown(&unknown, problems);
                return Some(raw);
            }
            Err(error) => {
                let path = error.path().clone();
                problems.push(mismatch(&path, error.inner()));
                if !take_out(&mut value, &path) {
                    break;
                }
            }
        }
    }
    report_unknown(&unknown, problems);
    None
}

fn report_unknown(unknown: &BTreeSet<String>, problems: &mut Vec<String>) {
    for key in unknown {
        problems.push(format!("{key}: unknown key"));
    }
}

fn mismatch(path: &serde_path_to_error::Path, error: &toml::de::Error) -> String {
    let message = plain(error.message());
    match path.iter().len() {
        0 => message,
        _ => format!("{path}: {message}"),
    }
}

/// serde's words for Rust types, in TOML's.
fn plain(message: &str) -> String {
    let mut text = message.trim_end_matches('\n').to_string();
    for (rust, toml) in [
        ("expected u32", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected usize", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected a table"),
        ("expected a boolean", "expected true or false"),
    ] {
        text = text.replace(rust, toml);
    }
    if let Some(start) = text.find("expected struct ") {
        text.replace_range(start.., "expected a table");
    }
    text
}

/// Removes what `path` names from `value`; false when it cannot be done without moving
/// other values (an array element) or the path leads nowhere.
fn take_out(value: &mut Value, path: &serde_path_to_error::Path) -> bool {
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((Segment::Map { key }, parents)) = segments.split_last() else {
        return false;
    };
    let mut here = value;
    for segment in parents {
        here = match (segment, here) {
            (Segment::Map { key }, Value::Table(table)) => match table.get_mut(key) {
                Some(next) => next,
                None => return false,
            },
            (Segment::Seq { index }, Value::Array(items)) => match items.get_mut(*index) {
                Some(next) => next,
                None => return false,
            },
            _ => return false,
        };
    }
    match here {
        Value::Table(table) => table.remove(key).is_some(),
        _ => false,
    }
}

/// `sources[0].destinations[1].nme`, the way every other problem names a key.
fn key_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", key_path(parent)),
        Path::Map { parent, key } => match key_path(parent) {
            parent if parent.is_empty() => key.clone(),
            parent => format!("{parent}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => key_path(parent),
    }
}
