//! `nats_client`: NATS JetStream as a client component, the NATS text
//! protocol by hand over one TCP connection per node (wasi:sockets; the
//! host lets it reach the cycle's nodes only). The same operations as
//! `examples/nats/driver.py`, which uses the official nats-py:
//!
//! - `ready`: `$JS.API.INFO` answers (JetStream on, a meta leader known),
//!   and the stream, once created, has a leader;
//! - `setup`: an R3 file stream `chaos-<namespace>` on `<namespace>.>`;
//! - `add`: a publish on `<namespace>.add`, `ok` on JetStream's ack, `fail`
//!   when it was refused before storing (a 4xx API error, or never sent),
//!   `info` otherwise (no answer: it may have been stored);
//! - `read`: every message of the stream (stream info for the first and
//!   last sequence, then `STREAM.MSG.GET` each; the stream leader answers),
//!   `[]` when the stream is gone.

use base64::Engine;
use chaos_sdk::client::{Client, ClientConfig, ClientInfo, Outcome};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

struct Nats;

/// A connection to one server, subscribed to its own reply inbox.
struct Conn {
    /// Reads through the buffer, writes through `get_mut` (a wasi:sockets
    /// stream cannot be cloned).
    reader: BufReader<TcpStream>,
    inbox: String,
    next: u64,
}

thread_local! {
    static CONFIG: RefCell<Option<ClientConfig>> = const { RefCell::new(None) };
    static CONNS: RefCell<HashMap<u32, Conn>> = RefCell::new(HashMap::new());
}

fn config<T>(f: impl FnOnce(&ClientConfig) -> T) -> T {
    CONFIG.with(|c| {
        f(c.borrow()
            .as_ref()
            .expect("open() runs before any operation"))
    })
}

fn stream() -> String {
    config(|c| format!("chaos-{}", c.namespace))
}

/// Why a request has no answer: before anything was sent, or after.
enum Failure {
    NotSent(String),
    Lost(String),
}

impl Conn {
    fn open(node: u32) -> Result<Conn, String> {
        let addr = config(|c| c.nodes.get(node as usize).cloned())
            .ok_or_else(|| format!("no node {node}"))?;
        let s = TcpStream::connect(&addr).map_err(|e| format!("{addr}: {e}"))?;
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("{addr}: {e}"))?;
        if !line.starts_with("INFO ") {
            return Err(format!("{addr}: expected INFO, got {line:?}"));
        }
        let (process, cycle) = config(|c| (c.process, c.cycle));
        let inbox = format!("_INBOX.chaos.c{cycle}.p{process}.n{node}");
        let hello = format!(
            "CONNECT {}\r\nSUB {inbox}.* 1\r\nPING\r\n",
            json!({"verbose": false, "pedantic": false, "lang": "rust-wasm", "version": "0.1.0", "protocol": 1, "headers": false})
        );
        reader
            .get_mut()
            .write_all(hello.as_bytes())
            .map_err(|e| format!("{addr}: {e}"))?;
        let mut c = Conn {
            reader,
            inbox,
            next: 0,
        };
        // The PONG says the CONNECT and SUB were taken.
        loop {
            match c.frame().map_err(|e| format!("{addr}: {e}"))? {
                Frame::Pong => return Ok(c),
                Frame::Err(e) => return Err(format!("{addr}: {e}")),
                _ => {}
            }
        }
    }

    /// The next frame from the server; PINGs are answered on the way.
    fn frame(&mut self) -> Result<Frame, String> {
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed".into());
            }
            let line = line.trim_end();
            if line == "PING" {
                self.reader
                    .get_mut()
                    .write_all(b"PONG\r\n")
                    .map_err(|e| e.to_string())?;
                continue;
            }
            if line == "PONG" {
                return Ok(Frame::Pong);
            }
            if line == "+OK" || line.starts_with("INFO ") {
                continue;
            }
            if let Some(e) = line.strip_prefix("-ERR ") {
                return Ok(Frame::Err(e.to_string()));
            }
            if let Some(rest) = line.strip_prefix("MSG ") {
                // MSG <subject> <sid> [reply-to] <#bytes>
                let parts: Vec<&str> = rest.split(' ').collect();
                let len: usize = parts
                    .last()
                    .and_then(|l| l.parse().ok())
                    .ok_or_else(|| format!("bad MSG line {line:?}"))?;
                let subject = parts[0].to_string();
                let mut payload = vec![0u8; len + 2];
                std::io::Read::read_exact(&mut self.reader, &mut payload)
                    .map_err(|e| e.to_string())?;
                payload.truncate(len);
                return Ok(Frame::Msg(subject, payload));
            }
            return Err(format!("unexpected line {line:?}"));
        }
    }

    /// Publish `payload` on `subject` and wait for the reply.
    fn request(&mut self, subject: &str, payload: &[u8]) -> Result<Vec<u8>, Failure> {
        self.next += 1;
        let reply = format!("{}.{}", self.inbox, self.next);
        let mut out = format!("PUB {subject} {reply} {}\r\n", payload.len()).into_bytes();
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
        self.reader
            .get_mut()
            .write_all(&out)
            .map_err(|e| Failure::NotSent(e.to_string()))?;
        loop {
            match self.frame().map_err(Failure::Lost)? {
                Frame::Msg(s, p) if s == reply => return Ok(p),
                // A late answer to an earlier request (that one timed out).
                Frame::Msg(..) | Frame::Pong => {}
                Frame::Err(e) => return Err(Failure::Lost(e)),
            }
        }
    }
}

enum Frame {
    Pong,
    Err(String),
    Msg(String, Vec<u8>),
}

/// A JetStream API request to `node`; the connection is dropped after a
/// failure (the next request reconnects).
fn api(node: u32, subject: &str, body: &Value) -> Result<Value, Failure> {
    let conn = CONNS.with(|c| c.borrow_mut().remove(&node));
    let mut conn = match conn {
        Some(c) => c,
        None => Conn::open(node).map_err(Failure::NotSent)?,
    };
    let payload = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let answer = conn.request(subject, &payload)?;
    CONNS.with(|c| c.borrow_mut().insert(node, conn));
    serde_json::from_slice(&answer).map_err(|e| Failure::Lost(format!("{subject}: not JSON: {e}")))
}

/// The API error of an answer: (code, err_code, description).
fn api_error(v: &Value) -> Option<(u64, u64, String)> {
    let e = v.get("error")?;
    Some((
        e["code"].as_u64().unwrap_or(0),
        e["err_code"].as_u64().unwrap_or(0),
        e["description"].as_str().unwrap_or("").to_string(),
    ))
}

const STREAM_NOT_FOUND: u64 = 10059;
const NO_MESSAGE_FOUND: u64 = 10037;

fn text(f: Failure) -> String {
    match f {
        Failure::NotSent(e) | Failure::Lost(e) => e,
    }
}

impl Client for Nats {
    fn describe() -> ClientInfo {
        let mut info = chaos_sdk::client::info(
            "nats_client",
            env!("CARGO_PKG_VERSION"),
            "NATS JetStream over the NATS text protocol: publish, read back every message of an R3 stream",
        );
        info.author = "chaos-host".into();
        info
    }

    fn open(config: ClientConfig) -> Result<(), String> {
        CONFIG.with(|c| *c.borrow_mut() = Some(config));
        Ok(())
    }

    fn ready(node: u32) -> Outcome {
        match api(node, "$JS.API.INFO", &Value::Null) {
            Ok(v) if api_error(&v).is_none() => {}
            Ok(v) => return Outcome::Fail(format!("{v}")),
            Err(f) => return Outcome::Fail(text(f)),
        }
        match api(
            node,
            &format!("$JS.API.STREAM.INFO.{}", stream()),
            &Value::Null,
        ) {
            Ok(v) => match api_error(&v) {
                Some((_, STREAM_NOT_FOUND, _)) => Outcome::Ok,
                Some((_, _, d)) => Outcome::Fail(d),
                None if v["cluster"]["leader"].is_string() => Outcome::Ok,
                None => Outcome::Fail("the stream has no leader".into()),
            },
            Err(f) => Outcome::Fail(text(f)),
        }
    }

    fn setup() -> Outcome {
        let ns = config(|c| c.namespace.clone());
        let name = stream();
        let body = json!({
            "name": name, "subjects": [format!("{ns}.>")], "num_replicas": 3,
            "storage": "file", "retention": "limits", "discard": "old",
        });
        // The meta leader may not see every peer yet right after start.
        for _ in 0..50 {
            match api(0, &format!("$JS.API.STREAM.CREATE.{name}"), &body) {
                Ok(v) => match api_error(&v) {
                    None => return Outcome::Ok,
                    Some((_, 10005, _)) => {}
                    Some((c, e, d)) => return Outcome::Fail(format!("{c} {e} {d}")),
                },
                Err(f) => return Outcome::Fail(text(f)),
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Outcome::Fail("no suitable peers for the stream after 5 s".into())
    }

    fn add(node: u32, id: String) -> Outcome {
        let subject = config(|c| format!("{}.add", c.namespace));
        let conn = CONNS.with(|c| c.borrow_mut().remove(&node));
        let mut conn = match conn {
            Some(c) => c,
            None => match Conn::open(node) {
                Ok(c) => c,
                Err(e) => return Outcome::Fail(e),
            },
        };
        match conn.request(&subject, id.as_bytes()) {
            Ok(answer) => {
                CONNS.with(|c| c.borrow_mut().insert(node, conn));
                match serde_json::from_slice::<Value>(&answer) {
                    Ok(v) => match api_error(&v) {
                        None if v["seq"].is_u64() => Outcome::Ok,
                        None => Outcome::Info(format!("ack without seq: {v}")),
                        // Refused before storing.
                        Some((400, e, d)) => Outcome::Fail(format!("{e} {d}")),
                        Some((c, e, d)) => Outcome::Info(format!("{c} {e} {d}")),
                    },
                    Err(e) => Outcome::Info(format!("ack not JSON: {e}")),
                }
            }
            Err(Failure::NotSent(e)) => Outcome::Fail(e),
            Err(Failure::Lost(e)) => Outcome::Info(e),
        }
    }

    fn read(node: u32) -> Result<Vec<String>, Outcome> {
        let name = stream();
        let info = api(node, &format!("$JS.API.STREAM.INFO.{name}"), &Value::Null)
            .map_err(|f| Outcome::Fail(text(f)))?;
        match api_error(&info) {
            Some((_, STREAM_NOT_FOUND, _)) => return Ok(vec![]),
            Some((c, e, d)) => return Err(Outcome::Fail(format!("{c} {e} {d}"))),
            None => {}
        }
        let (first, last) = (
            info["state"]["first_seq"].as_u64().unwrap_or(1).max(1),
            info["state"]["last_seq"].as_u64().unwrap_or(0),
        );
        let mut ids = Vec::new();
        for seq in first..=last {
            let v = api(
                node,
                &format!("$JS.API.STREAM.MSG.GET.{name}"),
                &json!({ "seq": seq }),
            )
            .map_err(|f| Outcome::Fail(text(f)))?;
            match api_error(&v) {
                Some((_, NO_MESSAGE_FOUND, _)) => continue,
                Some((c, e, d)) => return Err(Outcome::Fail(format!("{c} {e} {d}"))),
                None => {}
            }
            let data = v["message"]["data"].as_str().unwrap_or("");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| Outcome::Fail(format!("message {seq}: {e}")))?;
            ids.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        Ok(ids)
    }
}

chaos_sdk::export_client!(Nats);
