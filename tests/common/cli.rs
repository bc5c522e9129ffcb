//! The `hookgate` binary run from a shell against a test's configuration file, as an operator
//! runs its commands.

use tempfile::NamedTempFile;

#[derive(Debug)]
pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// `hookgate --config <config> <args>`, as the user running the tests.
pub async fn hookgate(config: &NamedTempFile, args: &[&str]) -> Output {
    run(config, args, |_| {}).await
}

/// [`hookgate`] with `$USER` set to `user`, or unset when `None`.
pub async fn hookgate_as(config: &NamedTempFile, user: Option<&str>, args: &[&str]) -> Output {
    run(config, args, |command| match user {
        Some(user) => {
            command.env("USER", user);
        }
        None => {
            command.env_remove("USER");
        }
    })
    .await
}

async fn run(
    config: &NamedTempFile,
    args: &[&str],
    adjust: impl FnOnce(&mut tokio::process::Command),
) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"));
    // The file says where the test's Postgres schema and Redis prefix are, not the shell.
    command
        .env_remove("HOOKGATE_DATABASE_URL")
        .env_remove("HOOKGATE_REDIS_URL")
        .arg("--config")
        .arg(config.path())
        .args(args);
    adjust(&mut command);
    let out = command.output().await.unwrap();
    Output {
        ok: out.status.success(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}
