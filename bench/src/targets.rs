//! What a run requests: one server (scheme, host, port) and a set of objects on
//! it, from `--url`s or a manifest; object sizes come from the manifest, the
//! verify directory, or a HEAD request.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, HOST};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use serde::Deserialize;

use crate::client;

/// The HTTP/1.1 server requests go to.
#[derive(Debug, Clone)]
pub struct Server {
    /// `host:port` to connect to.
    pub addr: String,
    /// The Host header.
    pub host: HeaderValue,
    /// `http://host:port`, for reports.
    pub base: String,
    /// Sent with every request (`--header`), after the bench's own.
    pub headers: Vec<crate::args::Header>,
}

/// What a sampled response is compared with.
#[derive(Debug, Clone)]
pub enum Expected {
    /// Nothing beyond status, length and Content-Range.
    Unknown,
    /// The local copy of the object (`--verify-dir`).
    File(Arc<File>),
    /// The SHA-256 of the whole object (from a manifest).
    Sha256([u8; 32]),
}

/// One object to request.
#[derive(Debug, Clone)]
pub struct Object {
    /// Origin-form request target (path and query).
    pub uri: Uri,
    /// The path without query, for messages and the verify directory.
    pub path: String,
    pub size: u64,
    pub expected: Expected,
}

impl Object {
    /// The same object under another cache key: `query` appended to the URI.
    pub fn with_query(&self, query: &str) -> Uri {
        let target = self
            .uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/");
        let sep = if target.contains('?') { '&' } else { '?' };
        Uri::try_from(format!("{target}{sep}{query}")).unwrap_or_else(|_| self.uri.clone())
    }
}

/// The server and the objects of one side of a run.
#[derive(Debug, Clone)]
pub struct Targets {
    pub server: Server,
    pub objects: Vec<Object>,
}

/// One line of `keyframe ingest --json`.
#[derive(Debug, Deserialize)]
struct ManifestLine {
    path: String,
    size: u64,
    sha256: Option<String>,
}

/// Whether `s` is a URL the bench can measure (plain `http://` with a host).
pub fn check_url(s: &str) -> anyhow::Result<()> {
    parse_url(s).map(drop)
}

pub(crate) fn parse_url(s: &str) -> anyhow::Result<url::Url> {
    let url = url::Url::parse(s).with_context(|| format!("--url {s}"))?;
    if url.scheme() != "http" {
        bail!("--url {s}: only http:// is supported (the bench measures plain HTTP/1.1)");
    }
    if url.host_str().is_none() {
        bail!("--url {s}: no host");
    }
    Ok(url)
}

pub(crate) fn server_of(url: &url::Url) -> anyhow::Result<Server> {
    let host = url.host_str().ok_or_else(|| anyhow!("{url}: no host"))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    Ok(Server {
        addr: format!("{host}:{port}"),
        host: HeaderValue::from_str(&authority).context("host header")?,
        base: format!("http://{authority}"),
        headers: Vec::new(),
    })
}

fn object_of(url: &url::Url) -> anyhow::Result<Object> {
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    Ok(Object {
        uri: Uri::try_from(target.as_str()).with_context(|| format!("{url}"))?,
        path: url.path().to_owned(),
        size: 0,
        expected: Expected::Unknown,
    })
}

/// The file in `dir` named as the last segment of `path`.
pub fn verify_file(dir: &Path, path: &str) -> anyhow::Result<(Arc<File>, u64)> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.is_empty() || name == "." || name == ".." {
        bail!("{path}: no file name to look up in --verify-dir");
    }
    let file_path = dir.join(name);
    let file =
        File::open(&file_path).with_context(|| format!("--verify-dir: {}", file_path.display()))?;
    let len = file.metadata()?.len();
    Ok((Arc::new(file), len))
}

impl Targets {
    /// Builds the target set from `--url`s (or one base URL and a manifest),
    /// without sizes where neither the manifest nor the verify directory gives
    /// them ([`Targets::probe`] fills those in).
    pub fn from_args(
        urls: &[String],
        manifest: Option<&Path>,
        verify_dir: Option<&Path>,
    ) -> anyhow::Result<Targets> {
        let first = urls.first().ok_or_else(|| anyhow!("--url is required"))?;
        let base = parse_url(first)?;
        let server = server_of(&base)?;
        let mut objects = Vec::new();
        if let Some(manifest) = manifest {
            if urls.len() != 1 {
                bail!("with --manifest, give exactly one --url: the base URL");
            }
            let text = std::fs::read_to_string(manifest)
                .with_context(|| format!("--manifest {}", manifest.display()))?;
            let prefix = first.trim_end_matches('/');
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let entry: ManifestLine = serde_json::from_str(line)
                    .with_context(|| format!("--manifest line {}", i + 1))?;
                let url = parse_url(&format!("{prefix}{}", entry.path))?;
                let mut object = object_of(&url)?;
                object.size = entry.size;
                if let Some(hexsum) = entry.sha256 {
                    let mut sum = [0u8; 32];
                    hex::decode_to_slice(hexsum.trim(), &mut sum)
                        .with_context(|| format!("--manifest line {}: sha256", i + 1))?;
                    object.expected = Expected::Sha256(sum);
                }
                objects.push(object);
            }
            if objects.is_empty() {
                bail!("--manifest {}: no objects", manifest.display());
            }
        } else {
            for u in urls {
                let url = parse_url(u)?;
                if server_of(&url)?.addr != server.addr {
                    bail!("all --url must be on one server ({} and {u})", server.base);
                }
                objects.push(object_of(&url)?);
            }
        }
        if let Some(dir) = verify_dir {
            for object in &mut objects {
                let (file, len) = verify_file(dir, &object.path)?;
                if manifest.is_some() && len != object.size {
                    bail!(
                        "{}: the manifest says {} bytes, --verify-dir has {len}",
                        object.path,
                        object.size
                    );
                }
                object.size = len;
                object.expected = Expected::File(file);
            }
        }
        Ok(Targets { server, objects })
    }

    /// Fills in unknown sizes (from HEAD, or a one-byte range) and checks known
    /// ones against the server.
    pub async fn probe(&mut self) -> anyhow::Result<()> {
        let (mut sender, conn) = client::connect(&self.server.addr)
            .await
            .with_context(|| format!("connecting to {}", self.server.base))?;
        let driver = tokio::spawn(conn);
        for object in &mut self.objects {
            let served = served_size(&mut sender, &self.server, object)
                .await
                .with_context(|| format!("{}{}", self.server.base, object.path))?;
            let known = !matches!(object.expected, Expected::Unknown) || object.size != 0;
            if known && served != object.size {
                bail!(
                    "{}{} serves {served} bytes, expected {}",
                    self.server.base,
                    object.path,
                    object.size
                );
            }
            object.size = served;
        }
        drop(sender);
        driver.abort();
        Ok(())
    }

    /// The other side of `--compare`: the same objects on `other`'s server (or,
    /// for a single --url without manifest, `other` itself when it has a path).
    pub fn rebase(&self, other: &str, single_url: bool) -> anyhow::Result<Targets> {
        let url = parse_url(other).context("--compare")?;
        let mut server = server_of(&url)?;
        server.headers = self.server.headers.clone();
        let objects = if single_url && url.path() != "/" && !url.path().is_empty() {
            let mut object = object_of(&url)?;
            object.size = self.objects[0].size;
            object.expected = self.objects[0].expected.clone();
            vec![object]
        } else {
            self.objects.clone()
        };
        Ok(Targets { server, objects })
    }
}

async fn served_size(
    sender: &mut client::Sender,
    server: &Server,
    object: &Object,
) -> anyhow::Result<u64> {
    let mut req = Request::new(Empty::new());
    *req.method_mut() = Method::HEAD;
    *req.uri_mut() = object.uri.clone();
    req.headers_mut().insert(HOST, server.host.clone());
    for h in &server.headers {
        req.headers_mut().insert(h.name.clone(), h.value.clone());
    }
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let len = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    if status == StatusCode::OK {
        if let Some(len) = len {
            return Ok(len);
        }
    }
    // No usable HEAD: ask for one byte and read the total from Content-Range.
    let req = client::request(server, object.uri.clone(), Some((0, 0)), true);
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let total = resp
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit('/').next())
        .and_then(|v| v.parse::<u64>().ok());
    let body = resp.into_body().collect().await?.to_bytes();
    match (status, total) {
        (StatusCode::PARTIAL_CONTENT, Some(total)) => Ok(total),
        (StatusCode::OK, _) => Ok(body.len() as u64),
        _ => bail!("status {status}: cannot learn the object's size"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_one_server_and_objects() {
        let t = Targets::from_args(
            &[
                "http://127.0.0.1:8080/v1/objects/a.bin".into(),
                "http://127.0.0.1:8080/v1/objects/b.bin?x=1".into(),
            ],
            None,
            None,
        )
        .expect("targets");
        assert_eq!(t.server.addr, "127.0.0.1:8080");
        assert_eq!(t.server.host, "127.0.0.1:8080");
        assert_eq!(t.objects[1].uri, "/v1/objects/b.bin?x=1");
        assert_eq!(t.objects[1].path, "/v1/objects/b.bin");
        assert_eq!(
            t.objects[1].with_query("kf-cold=1"),
            "/v1/objects/b.bin?x=1&kf-cold=1"
        );
        assert_eq!(
            t.objects[0].with_query("kf-obj=3"),
            "/v1/objects/a.bin?kf-obj=3"
        );
        assert!(Targets::from_args(
            &[
                "http://127.0.0.1:8080/a".into(),
                "http://127.0.0.1:9090/b".into()
            ],
            None,
            None
        )
        .is_err());
        assert!(Targets::from_args(&["https://example.com/a".into()], None, None).is_err());
    }

    #[test]
    fn manifest_lines_join_the_base() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest = dir.path().join("m.jsonl");
        let sum = "ab".repeat(32);
        std::fs::write(
            &manifest,
            format!(
                "{{\"path\":\"/v1/objects/k1\",\"size\":10,\"sha256\":\"{sum}\",\"mime\":\"x\"}}\n\n\
                 {{\"path\":\"/v1/objects/k2\",\"size\":20,\"sha256\":\"{sum}\"}}\n"
            ),
        )
        .expect("write");
        let t = Targets::from_args(&["http://localhost:81/".into()], Some(&manifest), None)
            .expect("targets");
        assert_eq!(t.objects.len(), 2);
        assert_eq!(t.objects[1].uri, "/v1/objects/k2");
        assert_eq!(t.objects[1].size, 20);
        assert!(matches!(t.objects[0].expected, Expected::Sha256(s) if s == [0xab; 32]));
        assert_eq!(t.server.host, "localhost:81");

        let b = t.rebase("http://127.0.0.1:9000", false).expect("rebase");
        assert_eq!(b.server.addr, "127.0.0.1:9000");
        assert_eq!(b.objects[0].uri, "/v1/objects/k1");
    }

    #[test]
    fn rebase_single_url_with_a_path() {
        let t = Targets::from_args(&["http://127.0.0.1:1/a/x.bin".into()], None, None)
            .expect("targets");
        let b = t
            .rebase("http://127.0.0.1:2/b/y.bin", true)
            .expect("rebase");
        assert_eq!(b.objects[0].uri, "/b/y.bin");
        let c = t.rebase("http://127.0.0.1:2", true).expect("rebase");
        assert_eq!(c.objects[0].uri, "/a/x.bin");
    }
}
