//! Bearer tokens with scopes. Handlers name the scope they need as an extractor argument
//! (`_: Authorized<Replay>`), so a route cannot forget its check.

use super::Admin;
use super::error::ApiError;
use crate::config::{AdminToken, Scope};
use crate::store::admin_actions::Actor;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use std::marker::PhantomData;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Configured tokens, kept as SHA-256 digests: comparing digests in constant time takes the
/// same time whatever the presented token's length or first differing byte.
pub struct Tokens(Vec<Known>);

struct Known {
    name: String,
    digest: [u8; 32],
    scopes: Vec<Scope>,
}

impl Tokens {
    pub fn new(tokens: &[AdminToken]) -> Self {
        Self(
            tokens
                .iter()
                .map(|t| Known {
                    name: t.name.clone(),
                    digest: Sha256::digest(t.token.as_bytes()).into(),
                    scopes: t.scopes.clone(),
                })
                .collect(),
        )
    }

    /// Every configured token is compared, so timing does not tell which one matched.
    fn find(&self, presented: &str) -> Option<&Known> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.0.iter().fold(None, |found, known| {
            match bool::from(known.digest.ct_eq(&digest)) {
                true => Some(known),
                false => found,
            }
        })
    }

    /// The name of the token in `parts`' `Authorization` header, if it has `scope`.
    pub fn authorize(&self, parts: &Parts, scope: Scope) -> Result<String, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::Unauthorized(
                "send the token as \"Authorization: Bearer <token>\"",
            ))?;
        let presented = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or(v.strip_prefix("bearer ")))
            .ok_or(ApiError::Unauthorized(
                "the Authorization header must be \"Bearer <token>\"",
            ))?;
        let known = self
            .find(presented.trim())
            .ok_or(ApiError::Unauthorized("the token is not valid"))?;
        match known.scopes.contains(&scope) {
            true => Ok(known.name.clone()),
            false => Err(ApiError::Forbidden(scope.as_str())),
        }
    }
}

/// Which scope a route needs.
pub trait Needs {
    const SCOPE: Scope;
}

pub struct Read;
pub struct Replay;

impl Needs for Read {
    const SCOPE: Scope = Scope::Read;
}

impl Needs for Replay {
    const SCOPE: Scope = Scope::Replay;
}

/// Proof that the request carries a token with scope `S`; `token` is its configured name,
/// for the logs and the audit log (the token itself is never logged).
pub struct Authorized<S> {
    pub token: String,
    scope: PhantomData<S>,
}

impl<S> Authorized<S> {
    /// Who acts, for `admin_actions`: the token, by its name.
    pub fn actor(&self) -> Actor {
        Actor::token(&self.token)
    }
}

impl<S: Needs + Send> FromRequestParts<Arc<Admin>> for Authorized<S> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        admin: &Arc<Admin>,
    ) -> Result<Self, Self::Rejection> {
        let token = admin.tokens.authorize(parts, S::SCOPE)?;
        Ok(Self {
            token,
            scope: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn tokens() -> Tokens {
        Tokens::new(&[
            AdminToken {
                name: "viewer".into(),
                token: "read-only-token-0123456789".into(),
                scopes: vec![Scope::Read],
            },
            AdminToken {
                name: "oncall".into(),
                token: "oncall-token-0123456789".into(),
                scopes: vec![Scope::Read, Scope::Replay],
            },
        ])
    }

    fn parts(authorization: Option<&str>) -> Parts {
        let mut request = Request::builder();
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_token_is_authorized_for_its_scopes_only() {
        let tokens = tokens();
        let viewer = parts(Some("Bearer read-only-token-0123456789"));
        assert_eq!(tokens.authorize(&viewer, Scope::Read).unwrap(), "viewer");
        assert!(matches!(
            tokens.authorize(&viewer, Scope::Replay),
            Err(ApiError::Forbidden("replay"))
        ));
        let oncall = parts(Some("Bearer oncall-token-0123456789"));
        assert_eq!(tokens.authorize(&oncall, Scope::Replay).unwrap(), "oncall");
    }

    #[test]
    fn missing_malformed_and_unknown_tokens_are_unauthorized() {
        let tokens = tokens();
        for header in [
            None,
            Some("oncall-token-0123456789"),
            Some("Basic b25jYWxs"),
            Some("Bearer oncall-token-012345678"),
            Some("Bearer "),
        ] {
            assert!(
                matches!(
                    tokens.authorize(&parts(header), Scope::Read),
                    Err(ApiError::Unauthorized(_))
                ),
                "{header:?}"
            );
        }
    }
}
