//! Admin API tokens the admin tests configure: one that may read, one that may also replay.

/// May read.
pub const VIEWER: &str = "viewer-token-0123456789";
/// May read and replay (which covers redelivery).
pub const ONCALL: &str = "oncall-token-0123456789";

/// The `[[admin_tokens]]` entries for [`VIEWER`] and [`ONCALL`].
pub fn admin_tokens() -> String {
    format!(
        r#"
        [[admin_tokens]]
        name = "viewer"
        token = "{VIEWER}"
        scopes = ["read"]

        [[admin_tokens]]
        name = "oncall"
        token = "{ONCALL}"
        scopes = ["read", "replay"]
        "#
    )
}
