//! The harness itself, against a page served here on 127.0.0.1: every
//! helper a test uses, the panic a timeout gives, no network beyond the
//! loopback, and no process left once the browser is dropped. The tests
//! that start Chromium need Debian's (`make deps`).

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

#[test]
fn a_slug_is_a_file_name() {
    assert_eq!(
        slug("the worker 0/1 of app \"tally\""),
        "the-worker-0-1-of-app-tally"
    );
}

#[test]
fn chromedriver_says_its_port() {
    let line = "ChromeDriver was started successfully on port 44691.";
    assert_eq!(driver::port_in(line), Some(44691));
    assert_eq!(
        driver::port_in("Starting ChromeDriver 156.0 on port 0"),
        None
    );
}

const PAGE: &str = r#"<!doctype html><title>harness</title>
<input id="name"><button id="go" onclick="document.body.dataset.said = document.querySelector('#name').value">go</button>"#;

/// Serves [`PAGE`] for every request; returns `http://127.0.0.1:<port>/`.
async fn serve() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    PAGE.len()
                );
                let _ = conn.write_all(format!("{head}{PAGE}").as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/")
}

/// Processes (zombies aside) in process group `group`.
fn alive_in_group(group: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid pgrp …; comm may hold spaces.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.first() != Some(&"Z") && fields.get(2) == Some(&group.to_string().as_str())
        })
        .count()
}

#[tokio::test]
#[ignore = "needs Debian's chromium and chromium-driver (make deps)"]
async fn the_harness_drives_a_page_and_leaves_no_process_behind() {
    let url = serve().await;
    let browser = Browser::launch().await.unwrap();
    let group = browser.process_group();
    assert!(alive_in_group(group) >= 2, "chromedriver and Chromium run");
    browser.goto(&url).await.unwrap();
    assert_eq!(browser.eval("1 + 1").await.unwrap(), json!(2));
    assert_eq!(
        browser.eval("[innerWidth, innerHeight]").await.unwrap(),
        json!([WINDOW.0, WINDOW.1])
    );
    browser.fill("#name", "hello").await.unwrap();
    browser.click("#go").await.unwrap();
    let said = "document.body.dataset.said === 'hello' || document.body.dataset.said";
    browser
        .wait_for_js(said, Duration::from_secs(5), "the click")
        .await;
    // Only the loopback: a host name does not resolve.
    let far = "fetch('http://example.com/').then(() => 'loaded', () => 'failed')";
    assert_eq!(browser.eval(far).await.unwrap(), json!("failed"));
    let path = browser.screenshot("harness").await.unwrap();
    let png = std::fs::read(&path).unwrap();
    assert_eq!(
        &png[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is a PNG",
        path.display()
    );
    let part = browser
        .screenshot_of("#go", "harness-button")
        .await
        .unwrap();
    let png = std::fs::read(&part).unwrap();
    // The PNG header's width: the button's, not the window's.
    let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    assert!(
        width > 10 && width < 200,
        "{} is {width} px wide",
        part.display()
    );
    assert!(browser.screenshot_of("#nothing", "none").await.is_err());

    drop(browser);
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive_in_group(group) > 0 {
        assert!(
            Instant::now() < deadline,
            "processes of chromedriver's group {group} outlived the browser"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
#[ignore = "needs Debian's chromium and chromium-driver (make deps)"]
#[should_panic(
    expected = "waiting for a button that never says so: `document.title` was \"harness\""
)]
async fn a_timeout_names_what_was_awaited_and_the_last_value() {
    let url = serve().await;
    let browser = Browser::launch().await.unwrap();
    browser.goto(&url).await.unwrap();
    browser
        .wait_for_js(
            "document.title",
            Duration::from_millis(300),
            "a button that never says so",
        )
        .await;
}
