//! A real browser for the dashboard's tests: Debian's Chromium, headless,
//! driven over WebDriver by `fantoccini` through Debian's chromedriver
//! (`chromium-driver`; the processes are in [`driver`]). Chromium resolves
//! no host name: the dashboard is reached at `127.0.0.1` through a
//! port-forward, and nothing else can load.

mod driver;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use base64::Engine as _;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

pub use driver::{CHROMEDRIVER, CHROMIUM};
use driver::{Cdp, Driver};

/// Width and height of the browser's window (the viewport of every test).
pub const WINDOW: (u32, u32) = (1400, 900);
/// A screenshot is at most this tall (a full page taller than this is cut).
const MAX_SHOT_HEIGHT: u32 = 6000;

/// Where the tests' logs go, as `e2e/cluster/lib.sh` says:
/// `$EVENTFLOW_LOG_DIR`, else `$EVENTFLOW_STATE/logs`, else
/// `/var/lib/eventflow-e2e/logs`.
pub fn log_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EVENTFLOW_LOG_DIR") {
        return dir.into();
    }
    let state = std::env::var_os("EVENTFLOW_STATE").unwrap_or("/var/lib/eventflow-e2e".into());
    Path::new(&state).join("logs")
}

/// One headless Chromium with one window, driven over WebDriver.
pub struct Browser {
    client: Client,
    // Dropped after the client: kills chromedriver and Chromium.
    driver: Driver,
}

impl Browser {
    /// Starts chromedriver and, through it, Chromium: headless, without the
    /// sandbox (the tests run as root), in a [`WINDOW`]-sized window, with a
    /// profile of its own that goes when the browser does. Fails naming
    /// `make deps` when Chromium or chromedriver is not installed.
    pub async fn launch() -> Result<Self> {
        let driver = Driver::start()?;
        let (width, height) = WINDOW;
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-gpu".to_owned(),
            "--hide-scrollbars".to_owned(),
            "--force-device-scale-factor=1".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", driver.profile.display()),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-extensions".to_owned(),
            // Nothing but the port-forward: no host name resolves.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1".to_owned(),
        ];
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .map_err(|e| anyhow!("chromedriver could not start {CHROMIUM}: {e}"))?;
        let browser = Self { client, driver };
        // The viewport itself (a headless window's size includes its frame).
        let viewport =
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false});
        browser
            .cdp("Emulation.setDeviceMetricsOverride", viewport)
            .await?;
        Ok(browser)
    }

    /// The process group of chromedriver and the Chromium it started (the
    /// id of chromedriver's process).
    pub fn process_group(&self) -> u32 {
        self.driver.pid()
    }

    /// The WebDriver client, for what the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and returns once the page has loaded (its scripts ran).
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("opening {url}"))
    }

    /// The value of the JavaScript expression `expr` in the page.
    pub async fn eval(&self, expr: &str) -> Result<Value> {
        self.client
            .execute(&format!("return ({expr});"), vec![])
            .await
            .with_context(|| format!("evaluating `{expr}`"))
    }

    /// Polls `expr` every 100 ms until it is `true` and returns how long that
    /// took. Anything else counts as "not yet", so an expression may return
    /// what it sees instead of `false`. After `bound` it saves a screenshot
    /// and panics naming `what` and the last value.
    pub async fn wait_for_js(&self, expr: &str, bound: Duration, what: &str) -> Duration {
        match self.poll_js(expr, bound).await {
            Ok(took) => took,
            Err(last) => {
                let shot = format!("timeout-{}", slug(what));
                let saved = match self.screenshot(&shot).await {
                    Ok(path) => format!("screenshot {}", path.display()),
                    Err(e) => format!("no screenshot: {e:#}"),
                };
                panic!(
                    "timed out after {bound:?} waiting for {what}: `{expr}` was {last} ({saved})"
                );
            }
        }
    }

    /// [`Browser::wait_for_js`] without the panic: the time it took, or the
    /// last value once `bound` has passed.
    pub async fn poll_js(&self, expr: &str, bound: Duration) -> Result<Duration, Value> {
        let started = Instant::now();
        loop {
            let last = match self.eval(expr).await {
                Ok(Value::Bool(true)) => return Ok(started.elapsed()),
                Ok(v) => v,
                Err(e) => json!(format!("error: {e:#}")),
            };
            if started.elapsed() >= bound {
                return Err(last);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the first element matching the CSS `selector`, as a user does
    /// (a real mouse click at its centre). A page that redraws may replace
    /// the element between finding and clicking it: then it is found again,
    /// for up to 5 s.
    pub async fn click(&self, selector: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let clicked = match self.client.find(Locator::Css(selector)).await {
                Ok(element) => element.click().await,
                Err(e) => Err(e),
            };
            match clicked {
                Err(e) if e.is_stale_element_reference() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other.with_context(|| format!("clicking {selector}")),
            }
        }
    }

    /// Clicks `selector` until `expr` holds (within 5 s of a click), as a
    /// user clicks again when nothing happened: a page that redraws the
    /// element between the press and the release swallows the click. Panics
    /// as [`Browser::wait_for_js`] after three clicks; returns the clicks
    /// lost.
    pub async fn click_until(&self, selector: &str, expr: &str, what: &str) -> u32 {
        let mut lost = 0;
        loop {
            self.click(selector)
                .await
                .unwrap_or_else(|e| panic!("{e:#}"));
            if self.poll_js(expr, Duration::from_secs(5)).await.is_ok() {
                return lost;
            }
            lost += 1;
            if lost == 3 {
                let what = format!("{what} after 3 clicks on {selector}");
                self.wait_for_js(expr, Duration::ZERO, &what).await;
                return lost;
            }
        }
    }

    /// Types `text` into the first field matching `selector`, replacing what
    /// it held.
    pub async fn fill(&self, selector: &str, text: &str) -> Result<()> {
        let field = self
            .client
            .find(Locator::Css(selector))
            .await
            .with_context(|| format!("no element matches {selector}"))?;
        field.clear().await?;
        field
            .send_keys(text)
            .await
            .with_context(|| format!("typing into {selector}"))
    }

    /// Runs `source` in every document opened from now on, before the page's
    /// own scripts (DevTools' `Page.addScriptToEvaluateOnNewDocument`).
    pub async fn on_new_document(&self, source: &str) -> Result<()> {
        self.cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": source}),
        )
        .await
        .map(drop)
    }

    /// Saves the whole page (up to 6000 px tall) as
    /// `<log dir>/screenshots/<name>.png` and returns the file's path.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let metrics = self.cdp("Page.getLayoutMetrics", json!({})).await?;
        let size = &metrics["cssContentSize"];
        let width = size["width"].as_f64().unwrap_or(f64::from(WINDOW.0));
        let height = size["height"].as_f64().unwrap_or(f64::from(WINDOW.1));
        self.capture(name, [0.0, 0.0, width, height]).await
    }

    /// Saves the part of the page the first element matching `selector`
    /// covers, as [`Browser::screenshot`] does the whole page.
    pub async fn screenshot_of(&self, selector: &str, name: &str) -> Result<PathBuf> {
        let script = format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return null; \
             const r = e.getBoundingClientRect(); return [r.x + scrollX, r.y + scrollY, r.width, r.height]; }})()",
            json!(selector)
        );
        let rect = self.eval(&script).await?;
        let rect: [f64; 4] = serde_json::from_value(rect)
            .with_context(|| format!("no element matches {selector}"))?;
        self.capture(name, rect).await
    }

    async fn capture(&self, name: &str, [x, y, width, height]: [f64; 4]) -> Result<PathBuf> {
        let height = height.min(f64::from(MAX_SHOT_HEIGHT));
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": x, "y": y, "width": width, "height": height, "scale": 1},
                }),
            )
            .await?;
        let data = shot["data"]
            .as_str()
            .ok_or_else(|| anyhow!("Page.captureScreenshot gave no data: {shot}"))?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .context("Page.captureScreenshot gave no base64")?;
        let dir = log_dir().join("screenshots");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// A DevTools command through chromedriver (`goog/cdp/execute`).
    pub async fn cdp(&self, cmd: &str, params: Value) -> Result<Value> {
        self.client
            .issue_cmd(Cdp {
                cmd: cmd.to_owned(),
                params,
            })
            .await
            .with_context(|| format!("DevTools {cmd}"))
    }

    /// [`Browser::launch`] for a test: panics with the reason it cannot.
    pub async fn open() -> Self {
        Self::launch().await.unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// [`Browser::screenshot`] for a test: prints where it went, panics when
    /// it cannot.
    pub async fn save(&self, name: &str) {
        let path = self
            .screenshot(name)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        println!("screenshot {}", path.display());
    }

    /// [`Browser::screenshot_of`] for a test, as [`Browser::save`].
    pub async fn save_of(&self, selector: &str, name: &str) {
        let path = self
            .screenshot_of(selector, name)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        println!("screenshot {}", path.display());
    }

    /// Ends the WebDriver session (chromedriver closes Chromium), then stops
    /// chromedriver. Dropping the browser without it kills both at once.
    pub async fn close(self) -> Result<()> {
        self.client.clone().close().await?;
        Ok(())
    }
}

/// `what` as a file name: lowercase letters, digits and dashes.
fn slug(what: &str) -> String {
    let mut out = String::new();
    for c in what.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').chars().take(60).collect()
}
