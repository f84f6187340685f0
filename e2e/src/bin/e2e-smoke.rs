//! The smoke suite's in-cluster program, std only so the image stays small.
//!
//! `e2e-smoke serve <addr>` answers every HTTP request with `200 eventflow-smoke <hostname>`.
//! `e2e-smoke fetch <url> [seconds]` resolves the URL's host through the pod's
//! resolver (cluster DNS), GETs it, prints what it resolved and the answer, and
//! exits 0 on a 200 — retrying for up to `seconds` (default 60) while DNS or
//! the Service is not there yet.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") => serve(args.get(2).map_or("0.0.0.0:8080", String::as_str)),
        Some("fetch") if args.len() > 2 => {
            let secs = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(60);
            fetch_until(&args[2], Duration::from_secs(secs))
        }
        _ => {
            eprintln!("usage: e2e-smoke serve <addr> | fetch <url> [seconds]");
            ExitCode::from(2)
        }
    }
}

fn serve(addr: &str) -> ExitCode {
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bind {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let host = std::fs::read_to_string("/etc/hostname")
        .unwrap_or_default()
        .trim()
        .to_owned();
    eprintln!("serving on {addr}");
    for stream in listener.incoming().flatten() {
        let host = host.clone();
        std::thread::spawn(move || answer(stream, &host));
    }
    ExitCode::SUCCESS
}

fn answer(mut stream: TcpStream, host: &str) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    // Read the request head; the body (if any) is ignored.
    let mut line = String::new();
    while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
        if line == "\r\n" || line == "\n" {
            break;
        }
        line.clear();
    }
    let body = format!("eventflow-smoke {host}\n");
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn fetch_until(url: &str, budget: Duration) -> ExitCode {
    let start = Instant::now();
    loop {
        match fetch(url) {
            Ok(body) => {
                print!("{body}");
                return ExitCode::SUCCESS;
            }
            Err(e) if start.elapsed() < budget => {
                eprintln!("fetch {url}: {e}; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => {
                eprintln!("fetch {url}: {e}; giving up");
                return ExitCode::FAILURE;
            }
        }
    }
}

fn fetch(url: &str) -> Result<String, String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    let addrs: Vec<_> = authority
        .to_socket_addrs()
        .map_err(|e| format!("resolve {authority}: {e}"))?
        .collect();
    let addr = addrs.first().ok_or("no address")?;
    eprintln!("resolved {host} to {}", addr.ip());
    let mut s = TcpStream::connect_timeout(addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    s.read_to_string(&mut response).map_err(|e| e.to_string())?;
    let status = response.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        return Err(format!("answer {status:?}"));
    }
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok(format!("resolved {host} to {}\n{body}", addr.ip()))
}
