//! A plain HTTP/1.1 client for the tests of the REST API and the dashboard: one
//! request from this machine to a published port, its answer read by Content-Length
//! (slurmrestd sends a byte past it).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// An HTTP answer: its status, its head (names lower-cased) and its body.
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The value of header `name` (lower-case), if the answer has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
    }
}

/// One request to `url` ("http://HOST:PORT"), with a JSON `body`; retried while
/// nothing listens yet (right after `up`), for at most 60 s.
pub fn http(url: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let addr = url.strip_prefix("http://").expect("an http URL");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\
         Content-Type: application/json\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match exchange(addr, &request) {
            Some(answer) => return answer,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(500)),
            None => panic!("no answer from {url}{path} in 60 s"),
        }
    }
}

/// Sends `request`, reads the answer (`None`: no connection, or closed before a whole
/// answer came).
fn exchange(addr: &str, request: &str) -> Option<Answer> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                (name == "content-length").then(|| value.trim().parse::<usize>().ok())?
            })?;
            let body = &raw[end + 4..];
            if body.len() >= length {
                let status = head.split_whitespace().nth(1)?.parse().ok()?;
                let body = String::from_utf8_lossy(&body[..length]).into_owned();
                return Some(Answer { status, head, body });
            }
        }
        match stream.read(&mut chunk).ok()? {
            0 => return None,
            n => raw.extend_from_slice(&chunk[..n]),
        }
    }
}
