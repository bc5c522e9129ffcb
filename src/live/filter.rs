//! Which changes a reader wants.

use crate::store::transitions::{Change, Kind, Scope};

#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Applied in Postgres when catching up.
    pub scope: Scope,
    /// The kinds wanted; every kind when empty.
    pub kinds: Vec<Kind>,
}

#[derive(Debug, thiserror::Error)]
#[error("status={0:?} must be a comma-separated list of {kinds}", kinds = kinds())]
pub struct BadFilter(pub String);

fn kinds() -> String {
    Kind::ALL.map(Kind::as_str).join(", ")
}

impl Filter {
    /// Kinds as written in `status=` or `--status`: `dead_lettered,delivered`.
    pub fn parse_kinds(text: &str) -> Result<Vec<Kind>, BadFilter> {
        text.split(',')
            .map(|k| Kind::parse(k.trim()).ok_or_else(|| BadFilter(text.to_string())))
            .collect()
    }

    pub fn wants(&self, change: &Change) -> bool {
        let scope = &self.scope;
        scope.event_id.is_none_or(|id| id == change.event_id)
            && scope.source.as_ref().is_none_or(|s| *s == change.source)
            && (scope.destination.as_ref()).is_none_or(|d| Some(d) == change.destination.as_ref())
            && (self.kinds.is_empty() || self.kinds.contains(&change.kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_a_comma_separated_list_of_known_names() {
        assert_eq!(
            Filter::parse_kinds("dead_lettered, delivered").unwrap(),
            [Kind::DeadLettered, Kind::Delivered]
        );
        let error = Filter::parse_kinds("dead").unwrap_err();
        assert!(
            error.to_string().contains("received, attempt_failed"),
            "{error}"
        );
        assert!(Filter::parse_kinds("").is_err());
    }
}
