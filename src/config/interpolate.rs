//! `${NAME}` interpolation inside TOML string values.
//!
//! Interpolation runs on the parsed value tree rather than the raw text, so a `${` inside a
//! comment or a key is never touched and a secret containing quotes cannot break the TOML.

use toml::Value;

/// Replaces every `${NAME}` in every string of `value` with `lookup(NAME)`; `$${` stands for a
/// literal `${`. Each unresolvable reference adds one problem naming the key path.
pub fn interpolate(
    value: &mut Value,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) {
    walk(value, &mut String::new(), lookup, problems);
}

fn walk(
    value: &mut Value,
    path: &mut String,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) {
    match value {
        Value::String(s) if s.contains('$') => match expand(s, lookup) {
            Ok(expanded) => *s = expanded,
            Err(problem) => problems.push(format!("{path}: {problem}")),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(item, path, lookup, problems);
                path.truncate(len);
            }
        }
        Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                walk(item, path, lookup, problems);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        if let Some(after) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| "unterminated ${ in value".to_string())?;
            let name = &after[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid environment variable name {name:?}"));
            }
            match lookup(name) {
                Some(v) => out.push_str(&v),
                None => return Err(format!("environment variable {name} is not set")),
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SECRET" => Some("s3cr\"et".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn run(text: &str) -> (Value, Vec<String>) {
        let mut value: Value = toml::from_str(text).unwrap();
        let mut problems = Vec::new();
        interpolate(&mut value, &env, &mut problems);
        (value, problems)
    }

    #[test]
    fn replaces_variables_in_nested_strings_only() {
        let (value, problems) = run(r#"
            # ${NOT_A_VAR} in a comment is left alone
            a = "x-${SECRET}-y"
            [[t]]
            list = ["${SECRET}", "plain $ sign", "$${SECRET}"]
        "#);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(value["a"].as_str(), Some("x-s3cr\"et-y"));
        let list = value["t"][0]["list"].as_array().unwrap();
        assert_eq!(list[0].as_str(), Some("s3cr\"et"));
        assert_eq!(list[1].as_str(), Some("plain $ sign"));
        assert_eq!(list[2].as_str(), Some("${SECRET}"));
    }

    #[test]
    fn every_unset_variable_is_reported_with_its_path() {
        let (_, problems) = run(r#"
            a = "${MISSING_ONE}"
            [[sources]]
            secrets = ["${MISSING_TWO}", "${bad-name}", "${UNTERMINATED"]
        "#);
        assert_eq!(
            problems,
            vec![
                "a: environment variable MISSING_ONE is not set",
                "sources[0].secrets[0]: environment variable MISSING_TWO is not set",
                "sources[0].secrets[1]: invalid environment variable name \"bad-name\"",
                "sources[0].secrets[2]: unterminated ${ in value",
            ]
        );
    }

    #[test]
    fn an_empty_variable_expands_to_empty() {
        let (value, problems) = run(r#"a = "${EMPTY}""#);
        assert!(problems.is_empty());
        assert_eq!(value["a"].as_str(), Some(""));
    }
}
