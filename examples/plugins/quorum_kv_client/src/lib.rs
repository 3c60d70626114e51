//! `quorum_kv_client`: the reference store's client as a component. Each
//! operation is one HTTP/1.1 request on a fresh TCP connection to the node
//! asked (`std::net::TcpStream` over wasi:sockets: the host lets it reach
//! the cycle's nodes and nothing else).
//!
//! Parameter `peek` (a `host:port`, default none): before each write, also
//! connect there. Only for the tests that show the sandbox refusing an
//! address that is not a node of the cycle.

use chaos_sdk::client::{Client, ClientConfig, ClientInfo, Outcome};
use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;

struct QuorumKv;

thread_local! {
    static CONFIG: RefCell<Option<ClientConfig>> = const { RefCell::new(None) };
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
fn request(node: u32, method: &str, path: &str, body: &str) -> Result<(u16, String), Failure> {
    let addr = config(|c| c.nodes.get(node as usize).cloned())
        .ok_or_else(|| Failure::NotSent(format!("no node {node}")))?;
    let mut s = TcpStream::connect(&addr).map_err(|e| Failure::NotSent(format!("{addr}: {e}")))?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .map_err(|e| Failure::Lost(format!("{addr}: sending: {e}")))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .map_err(|e| Failure::Lost(format!("{addr}: reading: {e}")))?;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            Failure::Lost(format!(
                "{addr}: no HTTP status in {:?}",
                &text[..text.len().min(80)]
            ))
        })?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
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
}

chaos_sdk::export_client!(QuorumKv);
