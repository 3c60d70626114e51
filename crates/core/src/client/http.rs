//! The built-in client: the campaign's HTTP templates (`[write]`,
//! `[read]`), rendered per operation, and what their answers mean.

use super::{Answer, ReadError};
use chaos_model::campaign::{Campaign, Encoding, Vars};
use chaos_model::history::Outcome;
use std::time::Duration;

/// Longest body excerpt kept of an unexpected answer.
const BODY_EXCERPT: usize = 200;

/// Renders and sends single writes, and classifies what came of them.
#[derive(Clone)]
pub struct Writer {
    method: reqwest::Method,
    url: String,
    body: toml::Value,
    base64: Vec<String>,
    ok: Vec<u16>,
    quorum_not_met: Vec<u16>,
    indeterminate: Vec<u16>,
    timeout: Duration,
    namespace: String,
    cycle: String,
}

impl Writer {
    pub fn new(
        w: &chaos_model::campaign::Write,
        method: &reqwest::Method,
        namespace: &str,
        cycle: u32,
    ) -> Self {
        Self {
            method: method.clone(),
            url: w.url.clone(),
            body: w.body.clone(),
            base64: w.base64.clone(),
            ok: w.ok_status.clone(),
            quorum_not_met: w.quorum_not_met_status.clone(),
            indeterminate: w.indeterminate_status.clone(),
            timeout: Duration::from_millis(w.timeout_ms),
            namespace: namespace.to_string(),
            cycle: cycle.to_string(),
        }
    }

    /// Write `id` through node `index` at `port`.
    pub async fn write(
        &self,
        http: &reqwest::Client,
        index: u32,
        at: std::net::SocketAddr,
        id: &str,
    ) -> Answer {
        let vars = Vars::client(at, index)
            .with("id", id)
            .with("namespace", self.namespace.as_str())
            .with("cycle", self.cycle.as_str());
        let req = http
            .request(self.method.clone(), vars.render(&self.url))
            .json(&vars.render_body(&self.body, &self.base64))
            .timeout(self.timeout);
        match req.send().await {
            Ok(resp) => {
                let st = resp.status().as_u16();
                // Drain the body so the connection is reused.
                let body = resp.bytes().await;
                let outcome = if self.ok.contains(&st) {
                    Outcome::Ok
                } else if self.quorum_not_met.contains(&st) {
                    Outcome::QuorumNotMet
                } else if self.indeterminate.contains(&st) {
                    Outcome::Indeterminate
                } else {
                    Outcome::Unexpected
                };
                let body = (outcome == Outcome::Unexpected).then(|| {
                    let text = body.map(|b| String::from_utf8_lossy(&b).into_owned());
                    excerpt(&text.unwrap_or_default())
                });
                Answer {
                    outcome,
                    status: Some(st),
                    body,
                }
            }
            Err(e) => Answer {
                outcome: classify_error(&e),
                status: None,
                body: None,
            },
        }
    }
}

/// The first [`BODY_EXCERPT`] bytes of `text`, on one line.
fn excerpt(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut cut = one_line.len().min(BODY_EXCERPT);
    while !one_line.is_char_boundary(cut) {
        cut -= 1;
    }
    if cut < one_line.len() {
        format!("{}…", &one_line[..cut])
    } else {
        one_line
    }
}

/// A refused connection never reached the system: the write failed. Anything
/// that may have reached it (timeout, reset, truncated answer) is unknown.
fn classify_error(e: &reqwest::Error) -> Outcome {
    if e.is_timeout() {
        return Outcome::Indeterminate;
    }
    if e.is_connect() {
        let refused = std::error::Error::source(e)
            .map(|s| format!("{s:?}"))
            .is_some_and(|s| s.contains("ConnectionRefused"));
        return if refused {
            Outcome::Fail
        } else {
            Outcome::Indeterminate
        };
    }
    Outcome::Indeterminate
}

/// Reads back, by the campaign's `[read]` template, the ids a node holds.
#[derive(Clone)]
pub struct Reader {
    read: chaos_model::campaign::Read,
    method: reqwest::Method,
    namespace: String,
    cycle: String,
}

impl Reader {
    pub fn new(campaign: &Campaign, namespace: &str, cycle: u32) -> Self {
        Self {
            read: campaign.file.read.clone(),
            method: campaign.read_method.clone(),
            namespace: namespace.to_string(),
            cycle: cycle.to_string(),
        }
    }

    /// The ids node `index` at `at` holds in this cycle's namespace.
    pub async fn read(
        &self,
        http: &reqwest::Client,
        index: u32,
        at: std::net::SocketAddr,
    ) -> Result<Vec<String>, ReadError> {
        read_ids(self, http, index, at).await
    }
}

async fn read_ids(
    reader: &Reader,
    http: &reqwest::Client,
    index: u32,
    at: std::net::SocketAddr,
) -> Result<Vec<String>, ReadError> {
    let r = &reader.read;
    let (Some(url), Some(ids_pointer)) = (&r.url, &r.ids_pointer) else {
        // Validation requires both without [client].
        return Err(ReadError::Garbage(
            "read.url and read.ids_pointer are needed to read over HTTP".into(),
        ));
    };
    let vars = Vars::client(at, index)
        .with("namespace", reader.namespace.as_str())
        .with("cycle", reader.cycle.as_str());
    let url = vars.render(url);
    let mut req = http
        .request(reader.method.clone(), &url)
        .timeout(Duration::from_millis(r.timeout_ms));
    if let Some(body) = &r.body {
        req = req.json(&vars.render_body(body, &r.base64));
    }
    let unanswered = |what: &str, e: reqwest::Error| {
        let timeout = if e.is_timeout() {
            format!(" (no answer within read.timeout_ms = {})", r.timeout_ms)
        } else {
            String::new()
        };
        // The whole chain: reqwest's own text hides "connection refused"
        // in its sources.
        let text = format!("{:#}", anyhow::Error::from(e));
        ReadError::Unanswered(format!(
            "{what} from node {index} at {url}: {text}{timeout}"
        ))
    };
    let resp = req.send().await.map_err(|e| unanswered("read-back", e))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| unanswered("read-back body", e))?;
    if !status.is_success() {
        return Err(ReadError::Unanswered(format!(
            "read-back from node {index} at {url}: status {status}"
        )));
    }
    let doc: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        ReadError::Garbage(format!(
            "read-back from node {index} at {url}: not JSON ({e})"
        ))
    })?;
    let spec = IdSpec {
        pointer: ids_pointer,
        id_field: r.id_field.as_deref(),
        encoding: r.id_encoding,
        absent_is_empty: r.absent_is_empty,
    };
    spec.extract(&doc)
        .map_err(|e| ReadError::Garbage(format!("read-back from node {index} at {url}: {e}")))
}

/// Where the ids are in a read-back answer, and how they are encoded.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdSpec<'a> {
    pub pointer: &'a str,
    pub id_field: Option<&'a str>,
    pub encoding: Option<Encoding>,
    pub absent_is_empty: bool,
}

impl IdSpec<'_> {
    pub fn extract(&self, doc: &serde_json::Value) -> Result<Vec<String>, String> {
        if self.absent_is_empty && doc.pointer(self.pointer).is_none() {
            return Ok(Vec::new());
        }
        let ids = extract_ids(doc, self.pointer, self.id_field)?;
        match self.encoding {
            None => Ok(ids),
            Some(Encoding::Base64) => ids
                .into_iter()
                .enumerate()
                .map(|(i, id)| {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD
                        .decode(id.as_bytes())
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .ok_or_else(|| {
                            format!(
                                "element {i}: id {id:?} is not base64 of UTF-8 (read.id_encoding)"
                            )
                        })
                })
                .collect(),
        }
    }
}

/// The ids at `pointer` in `doc`; array elements are strings or numbers, or
/// objects holding the id at `id_field` (a JSON pointer or a plain key).
pub fn extract_ids(
    doc: &serde_json::Value,
    pointer: &str,
    id_field: Option<&str>,
) -> Result<Vec<String>, String> {
    let arr = doc
        .pointer(pointer)
        .ok_or_else(|| format!("read.ids_pointer {pointer:?} matches nothing in the response"))?
        .as_array()
        .ok_or_else(|| format!("read.ids_pointer {pointer:?} is not an array"))?;
    arr.iter()
        .enumerate()
        .map(|(i, v)| {
            let v = match id_field {
                Some(f) if f.starts_with('/') => v.pointer(f),
                Some(f) => v.get(f),
                None => Some(v),
            }
            .ok_or_else(|| {
                format!(
                    "element {i} has no read.id_field {:?}",
                    id_field.unwrap_or("")
                )
            })?;
            match v {
                serde_json::Value::String(s) => Ok(s.clone()),
                serde_json::Value::Number(n) => Ok(n.to_string()),
                other => Err(format!(
                    "element {i}: id is {other}, expected a string or number"
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_from_strings_numbers_and_objects() {
        let doc = json!({"ids": ["a", 2]});
        assert_eq!(extract_ids(&doc, "/ids", None).unwrap(), ["a", "2"]);
        let doc = json!({"memories": [{"title": "x"}, {"title": "y"}]});
        assert_eq!(
            extract_ids(&doc, "/memories", Some("title")).unwrap(),
            ["x", "y"]
        );
        let doc = json!({"kvs": [{"k": {"id": "z"}}]});
        assert_eq!(extract_ids(&doc, "/kvs", Some("/k/id")).unwrap(), ["z"]);
    }

    #[test]
    fn garbage_read_back_is_named() {
        assert!(
            extract_ids(&json!({"x": 1}), "/ids", None)
                .unwrap_err()
                .contains("matches nothing")
        );
        assert!(
            extract_ids(&json!({"ids": 1}), "/ids", None)
                .unwrap_err()
                .contains("not an array")
        );
        assert!(
            extract_ids(&json!({"ids": [{}]}), "/ids", Some("id"))
                .unwrap_err()
                .contains("element 0")
        );
        assert!(
            extract_ids(&json!({"ids": [null]}), "/ids", None)
                .unwrap_err()
                .contains("expected a string")
        );
    }

    #[test]
    fn base64_ids_and_absent_arrays() {
        let spec = IdSpec {
            pointer: "/kvs",
            id_field: Some("key"),
            encoding: Some(Encoding::Base64),
            absent_is_empty: true,
        };
        // etcd: `kvs` is omitted for an empty range; keys are base64.
        assert!(spec.extract(&json!({"count": "0"})).unwrap().is_empty());
        let doc = json!({"kvs": [{"key": "bnMxLXcw"}]});
        assert_eq!(spec.extract(&doc).unwrap(), ["ns1-w0"]);
        let bad = json!({"kvs": [{"key": "***"}]});
        assert!(spec.extract(&bad).unwrap_err().contains("not base64"));
        let strict = IdSpec {
            absent_is_empty: false,
            ..spec
        };
        assert!(
            strict
                .extract(&json!({}))
                .unwrap_err()
                .contains("matches nothing")
        );
    }

    /// Fuzzing the read-back parser: any JSON answer, under any id spec,
    /// yields ids or an error, never a panic; and ids encoded the way a
    /// system stores them come back exactly.
    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn json() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                "[a-zA-Z0-9+/=_-]{0,12}".prop_map(serde_json::Value::from),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..6)
                        .prop_map(serde_json::Value::from),
                    proptest::collection::btree_map(
                        "(ids|kvs|key|title|k|id|memories)",
                        inner,
                        0..4
                    )
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]
            #[test]
            fn any_answer_parses_or_errs(
                doc in json(),
                pointer in prop_oneof![Just(""), Just("/ids"), Just("/kvs"), Just("/memories"), Just("/kvs/0")],
                field in prop_oneof![Just(None), Just(Some("key")), Just(Some("title")), Just(Some("/k/id"))],
                base64 in any::<bool>(),
                absent in any::<bool>(),
            ) {
                let spec = IdSpec {
                    pointer,
                    id_field: field,
                    encoding: base64.then_some(Encoding::Base64),
                    absent_is_empty: absent,
                };
                let _ = spec.extract(&doc);
            }

            #[test]
            fn encoded_ids_come_back_exactly(ids in proptest::collection::vec("[ -~]{1,40}", 0..20)) {
                use base64::Engine;
                let kvs: Vec<serde_json::Value> = ids
                    .iter()
                    .map(|id| json!({"key": base64::engine::general_purpose::STANDARD.encode(id)}))
                    .collect();
                let spec = IdSpec {
                    pointer: "/kvs",
                    id_field: Some("key"),
                    encoding: Some(Encoding::Base64),
                    absent_is_empty: true,
                };
                prop_assert_eq!(spec.extract(&json!({"kvs": kvs})).unwrap(), ids);
            }
        }
    }
}
