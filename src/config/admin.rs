//! Who may use the admin listener, and how.

use serde::Deserialize;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Read events, dead letters and operations.
    Read,
    /// Replay and delete dead letters, start and cancel operations.
    Replay,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Replay => "replay",
        }
    }
}

pub struct AdminToken {
    pub name: String,
    pub token: String,
    pub scopes: Vec<Scope>,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// Shorter tokens can be guessed; 16 characters of a random token are ~95 bits.
const MIN_TOKEN_LEN: usize = 16;
/// How the audit log names the command line's actions (`cli:<user>`); no token is named so.
pub const CLI_ACTOR_PREFIX: &str = "cli:";

#[derive(Deserialize)]
pub(super) struct RawAdminToken {
    name: String,
    token: String,
    scopes: Vec<String>,
}

impl RawAdminToken {
    pub(super) fn validate(self, key: &str, problems: &mut Vec<String>) -> Option<AdminToken> {
        let before = problems.len();
        // The audit log (admin_actions) names API actions by the token's name and CLI actions
        // `cli:<user>`: a token named like the CLI would make the two indistinguishable.
        if self.name.starts_with(CLI_ACTOR_PREFIX) {
            problems.push(format!(
                "{key}.name: {:?} must not start with {CLI_ACTOR_PREFIX:?}, which marks actions taken with the CLI",
                self.name
            ));
        }
        if self.token.len() < MIN_TOKEN_LEN {
            problems.push(format!(
                "{key}.token: must be at least {MIN_TOKEN_LEN} characters (is its environment variable set?)"
            ));
        }
        let mut scopes = Vec::new();
        for scope in &self.scopes {
            match scope.as_str() {
                "read" => scopes.push(Scope::Read),
                "replay" => scopes.push(Scope::Replay),
                other => problems.push(format!(
                    "{key}.scopes: unknown scope {other:?} (read, replay)"
                )),
            }
        }
        if scopes.contains(&Scope::Replay) && !scopes.contains(&Scope::Read) {
            problems.push(format!(
                "{key}.scopes: \"replay\" needs \"read\" too (a replay answers with what it changed)"
            ));
        }
        if scopes.is_empty() {
            problems.push(format!("{key}.scopes: at least one scope is required"));
        }
        (problems.len() == before).then_some(AdminToken {
            name: self.name,
            token: self.token,
            scopes,
        })
    }
}
