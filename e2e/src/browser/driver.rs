//! The processes behind a [`super::Browser`]: chromedriver, started on a
//! port it picks itself (`--port=0`, read back from what it prints), and the
//! Chromium it starts, all in one process group that [`Driver`]'s drop
//! kills by the id of the process this module spawned. Also the one
//! WebDriver command fantoccini lacks: chromedriver's DevTools passthrough.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A running chromedriver (and whatever it started), and the Chromium
/// profile directory of its browser; both go on drop.
pub(super) struct Driver {
    child: Child,
    pub(super) port: u16,
    pub(super) profile: PathBuf,
}

impl Driver {
    pub(super) fn start() -> Result<Self> {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            if !Path::new(path).exists() {
                bail!(
                    "{path} is missing: the browser tests need Debian's {package}; `make deps` \
                     (e2e/cluster/deps.sh) installs it"
                );
            }
        }
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let profile = std::env::temp_dir().join(format!(
            "eventflow-browser-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&profile)
            .with_context(|| format!("creating {}", profile.display()))?;
        let child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {CHROMEDRIVER}"))?;
        let mut driver = Self {
            child,
            port: 0,
            profile,
        };
        driver.port = driver.read_port()?;
        Ok(driver)
    }

    /// Reads chromedriver's standard output until it says which port it
    /// took ("ChromeDriver was started successfully on port N."); a thread
    /// keeps draining it afterwards.
    fn read_port(&mut self) -> Result<u16> {
        let stdout = self
            .child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("chromedriver has no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut said = String::new();
            let mut told = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if told {
                    continue;
                }
                said.push_str(&line);
                said.push('\n');
                if let Some(port) = port_in(&line) {
                    let _ = tx.send(Ok(port));
                    told = true;
                }
            }
            if !told {
                let _ = tx.send(Err(said));
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(port)) => Ok(port),
            Ok(Err(said)) => bail!("chromedriver stopped without a port; it said:\n{said}"),
            Err(_) => bail!("chromedriver gave no port within 30 s"),
        }
    }

    /// chromedriver's process id, which is also its process group's.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The port in chromedriver's "ChromeDriver was started successfully on port N."
pub(super) fn port_in(line: &str) -> Option<u16> {
    let rest = line.split("started successfully on port ").nth(1)?;
    rest.trim().trim_end_matches('.').parse().ok()
}

/// chromedriver's DevTools passthrough: `POST /session/{id}/goog/cdp/execute`.
#[derive(Debug)]
pub(super) struct Cdp {
    pub(super) cmd: String,
    pub(super) params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (::http::Method, Option<String>) {
        let body = json!({"cmd": self.cmd, "params": self.params});
        (::http::Method::POST, Some(body.to_string()))
    }
}
