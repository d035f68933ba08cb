//! Remote mode: `keyframe ingest --server URL --admin-token T FILE…` streams each
//! file to a catalog's `POST /api/admin/ingest` instead of writing storage and the
//! database directly. The catalog runs the same pipeline; the output is the same.

use std::path::Path;

use futures::TryStreamExt;
use keyframe_catalog::uploads::IngestedContent;
use serde_json::json;
use tokio_util::io::ReaderStream;

/// Why a remote ingest failed, as one line.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("'{0}' is not an http:// or https:// URL")]
    BadUrl(String),
    #[error("cannot read '{path}': {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("'{0}' is not a regular file")]
    NotAFile(String),
    #[error("cannot reach the server {url}: {why}")]
    Unreachable { url: String, why: String },
    #[error("the server refused the upload: {status} {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the server's answer is not what ingest returns: {0}")]
    BadAnswer(String),
}

/// What to say about every file of one remote run.
#[derive(Clone, Debug, Default)]
pub struct RemoteMeta {
    pub title: Option<String>,
    pub description: Option<String>,
    pub categories: Vec<String>,
    pub regions: Vec<String>,
    pub available_from: Option<i64>,
    pub available_until: Option<i64>,
}

/// A client for one catalog.
pub struct Remote {
    client: reqwest::Client,
    endpoint: url::Url,
    token: String,
}

impl Remote {
    pub fn new(server: &str, token: &str) -> Result<Remote, RemoteError> {
        let base = url::Url::parse(server).map_err(|_| RemoteError::BadUrl(server.into()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(RemoteError::BadUrl(server.into()));
        }
        let endpoint = base
            .join("/api/admin/ingest")
            .map_err(|_| RemoteError::BadUrl(server.into()))?;
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| RemoteError::Unreachable {
                url: server.into(),
                why: e.to_string(),
            })?;
        Ok(Remote {
            client,
            endpoint,
            token: token.to_string(),
        })
    }

    /// Streams `file` to the catalog; `on_bytes` sees the running byte count.
    pub async fn upload(
        &self,
        file: &Path,
        meta: &RemoteMeta,
        on_bytes: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<IngestedContent, RemoteError> {
        let shown = file.display().to_string();
        let read = |source| RemoteError::Read {
            path: shown.clone(),
            source,
        };
        let f = tokio::fs::File::open(file).await.map_err(read)?;
        let md = f.metadata().await.map_err(read)?;
        if !md.is_file() {
            return Err(RemoteError::NotAFile(shown));
        }
        let filename = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "upload".into());
        let mut url = self.endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("filename", &filename);
            if let Some(t) = &meta.title {
                q.append_pair("title", t);
            }
            if let Some(d) = &meta.description {
                q.append_pair("description", d);
            }
            if !meta.categories.is_empty() {
                q.append_pair("categories", &meta.categories.join(","));
            }
            if !meta.regions.is_empty() {
                q.append_pair("regions", &meta.regions.join(","));
            }
            if let Some(t) = meta.available_from {
                q.append_pair("available_from", &t.to_string());
            }
            if let Some(t) = meta.available_until {
                q.append_pair("available_until", &t.to_string());
            }
        }
        // Ask first: a refusal (a wrong token, a bad parameter) comes back before
        // the body is streamed, not as a connection the server closed mid-upload.
        let check = self
            .client
            .get(url.clone())
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if !check.status().is_success() {
            let status = check.status();
            let text = check.text().await.unwrap_or_default();
            return Err(refused(status, &text));
        }
        let mut sent = 0u64;
        let body = ReaderStream::with_capacity(f, 256 * 1024).inspect_ok(move |b| {
            sent += b.len() as u64;
            on_bytes(sent);
        });
        let resp = self
            .client
            .post(url)
            .bearer_auth(&self.token)
            .header("content-type", "application/octet-stream")
            .header("content-length", md.len())
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| RemoteError::BadAnswer(e.to_string()))?;
        if !status.is_success() {
            return Err(refused(status, &text));
        }
        serde_json::from_str(&text).map_err(|e| RemoteError::BadAnswer(e.to_string()))
    }
}

impl Remote {
    fn unreachable(&self, e: &reqwest::Error) -> RemoteError {
        RemoteError::Unreachable {
            url: self.endpoint.origin().ascii_serialization(),
            why: keyframe_core::error_chain(e),
        }
    }
}

/// A refusal from the server's `{"error", "code"}` body.
fn refused(status: reqwest::StatusCode, text: &str) -> RemoteError {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|_| json!({}));
    RemoteError::Refused {
        status: status.as_u16(),
        code: v["code"].as_str().unwrap_or("unknown").to_string(),
        message: v["error"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| text.chars().take(200).collect()),
    }
}
