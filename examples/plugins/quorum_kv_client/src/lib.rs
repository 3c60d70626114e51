//! `quorum_kv_client`: the reference store's client as a component. Each
//! operation is one HTTP/1.1 request on a kept-alive TCP connection to the
//! node asked (`std::net::TcpStream` over wasi:sockets: the host lets it
//! reach the cycle's nodes and nothing else).
//!
//! Parameter `peek` (a `host:port`, default none): before each write, also
//! connect there. Only for the tests that show the sandbox refusing an
//! address that is not a node of the cycle.

use chaos_sdk::client::{Client, ClientConfig, ClientInfo, Outcome};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;

struct QuorumKv;

thread_local! {
    static CONFIG: RefCell<Option<ClientConfig>> = const { RefCell::new(None) };
    static CONNS: RefCell<HashMap<u32, BufReader<TcpStream>>> = RefCell::new(HashMap::new());
}

fn config<T>(f: impl FnOnce(&ClientConfig) -> T) -> T {
    CONFIG.with(|c| {
        f(c.borrow()
            .as_ref()
            .expect("open() runs before any operation"))
    })
}

/// Why a request got no answer: refused before anything was sent, or lost
/// after (the write may have happened).
enum Failure {
    NotSent(String),
    Lost(String),
}

/// `method path` with `body` to `node`; the status and body of the answer.
/// One kept-alive connection per node; a reused connection the node had
/// closed while idle (EOF before any byte of the answer) is replaced once,
/// as HTTP clients do: the node never read that request.
fn request(node: u32, method: &str, path: &str, body: &str) -> Result<(u16, String), Failure> {
    let addr = config(|c| c.nodes.get(node as usize).cloned())
        .ok_or_else(|| Failure::NotSent(format!("no node {node}")))?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    for attempt in 0..2 {
        let kept = CONNS.with(|c| c.borrow_mut().remove(&node));
        let reused = kept.is_some();
        let mut conn = match (kept, attempt) {
            (Some(c), _) => c,
            (None, 0) => BufReader::new(
                TcpStream::connect(&addr).map_err(|e| Failure::NotSent(format!("{addr}: {e}")))?,
            ),
            // The first attempt wrote the request: whatever happens now,
            // the node may have read it.
            (None, _) => BufReader::new(
                TcpStream::connect(&addr).map_err(|e| Failure::Lost(format!("{addr}: {e}")))?,
            ),
        };
        if let Err(e) = conn.get_mut().write_all(req.as_bytes()) {
            if reused && attempt == 0 {
                continue;
            }
            return Err(Failure::Lost(format!("{addr}: sending: {e}")));
        }
        match read_answer(&mut conn) {
            Ok(answer) => {
                CONNS.with(|c| c.borrow_mut().insert(node, conn));
                return Ok(answer);
            }
            Err(None) if reused && attempt == 0 => continue,
            Err(None) => return Err(Failure::Lost(format!("{addr}: closed without answering"))),
            Err(Some(e)) => return Err(Failure::Lost(format!("{addr}: reading: {e}"))),
        }
    }
    Err(Failure::Lost(format!("{addr}: closed without answering")))
}

/// One HTTP/1.1 answer: `Err(None)` when the stream ended before it began.
fn read_answer(conn: &mut BufReader<TcpStream>) -> Result<(u16, String), Option<String>> {
    let mut line = String::new();
    if conn.read_line(&mut line).map_err(|e| Some(e.to_string()))? == 0 {
        return Err(None);
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Some(format!("no HTTP status in {line:?}")))?;
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        conn.read_line(&mut h).map_err(|e| Some(e.to_string()))?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().map_err(|_| Some(format!("bad {h:?}")))?;
        }
    }
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body)
        .map_err(|e| Some(e.to_string()))?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// What a register write's answer means: `ok` on `ok_status`; `fail`
/// when it was never sent; `info` otherwise (a 503 may still have landed
/// on the node that answered, as the HTTP templates classify it).
fn written(answer: Result<(u16, String), Failure>, ok_status: u16) -> Outcome {
    match answer {
        Ok((st, _)) if st == ok_status => Outcome::Ok,
        Ok((st, b)) => Outcome::Info(format!("status {st}: {b}")),
        Err(Failure::NotSent(e)) => Outcome::Fail(e),
        Err(Failure::Lost(e)) => Outcome::Info(e),
    }
}

impl Client for QuorumKv {
    fn describe() -> ClientInfo {
        let mut info = chaos_sdk::client::info(
            "quorum_kv_client",
            env!("CARGO_PKG_VERSION"),
            "the reference store's client as a component: HTTP/1.1 over wasi:sockets",
        );
        info.author = "chaos-host".into();
        info.params.push(chaos_sdk::ParamSpec {
            name: "peek".into(),
            kind: chaos_sdk::ParamType::Text,
            default_value: String::new(),
            doc: "an address also dialled before each write (sandbox tests only)".into(),
        });
        info
    }

    fn open(config: ClientConfig) -> Result<(), String> {
        CONFIG.with(|c| *c.borrow_mut() = Some(config));
        Ok(())
    }

    fn ready(node: u32) -> Outcome {
        match request(node, "GET", "/health", "") {
            Ok((200, _)) => Outcome::Ok,
            Ok((st, _)) => Outcome::Fail(format!("status {st}")),
            Err(Failure::NotSent(e) | Failure::Lost(e)) => Outcome::Fail(e),
        }
    }

    fn setup() -> Outcome {
        Outcome::Ok
    }

    fn add(node: u32, id: String) -> Outcome {
        let peek = config(|c| {
            c.params
                .iter()
                .find(|(k, v)| k == "peek" && !v.is_empty())
                .map(|(_, v)| v.clone())
        });
        if let Some(addr) = peek {
            // Refused by the host's sandbox (the cycle names it).
            let _ = TcpStream::connect(addr.as_str());
        }
        let ns = config(|c| c.namespace.clone());
        let body = serde_json::json!({ "id": id, "ns": ns, "value": "component" }).to_string();
        match request(node, "POST", "/write", &body) {
            Ok((201, _)) => Outcome::Ok,
            // quorum-kv's 503: quorum not met, nothing kept.
            Ok((503, _)) => Outcome::Fail("status 503".into()),
            Ok((st, b)) => Outcome::Info(format!("status {st}: {b}")),
            Err(Failure::NotSent(e)) => Outcome::Fail(e),
            Err(Failure::Lost(e)) => Outcome::Info(e),
        }
    }

    fn read(node: u32) -> Result<Vec<String>, Outcome> {
        let ns = config(|c| c.namespace.clone());
        match request(node, "GET", &format!("/ids?ns={ns}"), "") {
            Ok((200, body)) => {
                let doc: serde_json::Value = serde_json::from_str(&body)
                    .map_err(|e| Outcome::Fail(format!("not JSON: {e}")))?;
                doc["ids"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .ok_or_else(|| Outcome::Fail("no ids array".into()))
            }
            Ok((st, _)) => Err(Outcome::Fail(format!("status {st}"))),
            Err(Failure::NotSent(e) | Failure::Lost(e))
                if e.contains(&ErrorKind::TimedOut.to_string()) =>
            {
                Err(Outcome::Info(e))
            }
            Err(Failure::NotSent(e) | Failure::Lost(e)) => Err(Outcome::Fail(e)),
        }
    }

    // The register workload: quorum-kv's `/kv/{key}` (register mode).

    fn put(node: u32, key: String, value: String) -> Outcome {
        let body = serde_json::json!({ "value": value }).to_string();
        written(request(node, "PUT", &format!("/kv/{key}"), &body), 200)
    }

    fn get(node: u32, key: String) -> Result<Option<String>, Outcome> {
        match request(node, "GET", &format!("/kv/{key}"), "") {
            Ok((200, body)) => {
                let doc: serde_json::Value = serde_json::from_str(&body)
                    .map_err(|e| Outcome::Fail(format!("not JSON: {e}")))?;
                Ok(doc["value"].as_str().map(String::from))
            }
            Ok((404, _)) => Ok(None),
            Ok((st, _)) => Err(Outcome::Fail(format!("status {st}"))),
            Err(Failure::NotSent(e) | Failure::Lost(e)) => Err(Outcome::Fail(e)),
        }
    }

    fn cas(node: u32, key: String, expected: Option<String>, value: String) -> Outcome {
        let body = serde_json::json!({ "expected": expected.unwrap_or_default(), "new": value })
            .to_string();
        match request(node, "POST", &format!("/kv/{key}/cas"), &body) {
            Ok((409, _)) => Outcome::Fail("status 409: not the expected value".into()),
            answer => written(answer, 200),
        }
    }
}

chaos_sdk::export_client!(QuorumKv);
