//! The command-line tools a user would run (kubectl, helm), run from the
//! repository's root.

use anyhow::{Result, anyhow, bail};

/// The repository's root, read when the test runs: a target directory shared
/// between clones may hold a binary built in another checkout.
pub fn repo_root() -> std::path::PathBuf {
    let dir = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    std::path::Path::new(&dir).join("..")
}

/// Runs a command-line tool that `make` puts on PATH (kubectl, helm) and
/// returns its standard output; fails naming the command and its output.
pub fn run_tool(tool: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(tool)
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            anyhow!(
                "cannot run {tool} ({e}): eval \"$(e2e/cluster/cluster.sh env)\" puts it on PATH"
            )
        })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{tool} {args:?} failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}
