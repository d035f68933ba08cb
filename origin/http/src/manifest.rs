//! Token propagation into streaming manifests: an HLS playlist or DASH MPD served to
//! a request that carried `__token__` in its query has every relative reference in
//! it rewritten to carry the same token, so a player that was given only the
//! manifest's signed URL can fetch every playlist, init range and segment.
//!
//! The rewriting is pure text surgery on the bytes as stored (no parse and
//! re-serialise, which could change what a player reads): HLS URI lines and
//! `URI="…"` attributes (RFC 8216 §4.1, §4.3); DASH `<BaseURL>` text and the
//! `media`, `initialization` and `sourceURL` attributes (ISO/IEC 23009-1 §5.6,
//! §5.3.9). Only relative references are touched: an absolute URL (a scheme, or
//! `//authority`) points at another server, which must never see the token. A
//! reference that already carries a token keeps it.
//!
//! The HTTP glue ([`Propagation`]) applies it to whole `200` answers of the
//! manifest media types, after the token was checked; caches store and key the
//! manifest unrewritten, so the token is never part of a cache key. A `Range` on a
//! manifest path with a token is ignored (RFC 9110 §14.2 lets a server send the
//! whole representation): a byte range of the stored text cannot be cut from a
//! rewritten one of another length. The rewritten answer gets its own length, an
//! entity tag derived from the stored one and the token, and `Accept-Ranges: none`.

use std::fmt::Write as _;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

use keyframe_core::ErrorCode;

use crate::http_server::{full, json_error, Body, BoxError};
use keyframe_core::token::{self, TOKEN_NAME};

/// The largest manifest rewritten; a larger answer goes out as stored (a 2-hour
/// HLS media playlist of 2-second segments is about 300 KB).
pub const MAX_MANIFEST: u64 = 16 << 20;

/// The two manifest formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An HLS playlist (RFC 8216).
    Hls,
    /// A DASH MPD (ISO/IEC 23009-1).
    Dash,
}

/// The manifest format of a media type (parameters ignored), if it is one.
pub fn kind_of(content_type: &str) -> Option<Kind> {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    const HLS: &[&str] = &[
        "application/vnd.apple.mpegurl",
        "application/x-mpegurl",
        "audio/mpegurl",
        "audio/x-mpegurl",
    ];
    if HLS.iter().any(|t| t.eq_ignore_ascii_case(essence)) {
        Some(Kind::Hls)
    } else if essence.eq_ignore_ascii_case("application/dash+xml") {
        Some(Kind::Dash)
    } else {
        None
    }
}

/// Whether a path names a manifest by its extension (`.m3u8`, `.mpd`).
pub fn is_manifest_path(path: &str) -> bool {
    kind_of(keyframe_core::mime::type_for_key(path)).is_some()
}

/// The `__token__=…` query parameter to append, the token percent-encoded so that
/// it is safe inside a URI, an HLS quoted string and an XML attribute alike. `/` is
/// encoded too: ffmpeg's DASH demuxer resolves an MPD's relative `BaseURL` against
/// the MPD's URL cut at its last `/`, query included, so a `/` of the token's `acl`
/// sent every rendition request to a wrong path (403).
pub fn token_param(token: &str) -> String {
    let mut s = String::with_capacity(TOKEN_NAME.len() + 1 + token.len());
    s.push_str(TOKEN_NAME);
    s.push('=');
    for b in token.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!*=:,".contains(&b) {
            s.push(b as char);
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    s
}

/// Rewrites a manifest of `kind` so each relative reference carries `param`.
pub fn rewrite(kind: Kind, text: &str, param: &str) -> String {
    match kind {
        Kind::Hls => rewrite_hls(text, param),
        Kind::Dash => rewrite_dash(text, param),
    }
}

/// `uri` with `param` appended to its query (joined by `amp`: `&`, or `&amp;` in
/// XML), or None when it must stay as it is: empty, absolute, or already carrying
/// a token.
fn with_param(uri: &str, param: &str, amp: &str) -> Option<String> {
    let trimmed = uri.trim();
    if trimmed.is_empty() || trimmed.starts_with("//") || has_scheme(trimmed) {
        return None;
    }
    let (before_fragment, fragment) = match uri.find('#') {
        Some(i) => uri.split_at(i),
        None => (uri, ""),
    };
    let (path, query) = match before_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before_fragment, None),
    };
    if let Some(q) = query {
        let plain = q.replace("&amp;", "&");
        if token::query_token(&plain).is_some() {
            return None;
        }
    }
    // Leading and trailing blanks (an XML text node's indentation) stay outside.
    let lead = &path[..path.len() - path.trim_start().len()];
    let path = path.trim_start();
    let (query, tail) = match query {
        Some(q) => {
            let t = q.trim_end();
            (Some(t), &q[t.len()..])
        }
        None => {
            let t = path.trim_end();
            let tail = &path[t.len()..];
            return Some(format!("{lead}{t}?{param}{tail}{fragment}"));
        }
    };
    let q = query.unwrap_or_default();
    let sep = if q.is_empty() { "" } else { amp };
    Some(format!("{lead}{path}?{q}{sep}{param}{tail}{fragment}"))
}

/// Whether a reference starts with a URI scheme (RFC 3986 §3.1) and so is absolute.
fn has_scheme(uri: &str) -> bool {
    let Some(colon) = uri.find(':') else {
        return false;
    };
    let scheme = &uri[..colon];
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        && !scheme.contains('/')
}

/// HLS: every URI line (a line that is neither blank nor starts with `#`) and
/// every `URI="…"` attribute of a tag line. Line endings are kept as they are.
pub fn rewrite_hls(text: &str, param: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let ending = &line[body.len()..];
        if body.starts_with("#EXT") {
            out.push_str(&rewrite_uri_attributes(body, param));
        } else if body.starts_with('#') || body.trim().is_empty() {
            out.push_str(body);
        } else {
            match with_param(body, param, "&") {
                Some(u) => out.push_str(&u),
                None => out.push_str(body),
            }
        }
        out.push_str(ending);
    }
    out
}

/// The `URI="…"` attributes of one HLS tag line rewritten (RFC 8216 §4.2: an
/// attribute list is `NAME=value` pairs separated by commas; quoted strings hold
/// no `"`, so a comma inside one is not a separator).
fn rewrite_uri_attributes(line: &str, param: &str) -> String {
    let Some(colon) = line.find(':') else {
        return line.to_string();
    };
    let mut out = String::with_capacity(line.len() + 64);
    out.push_str(&line[..=colon]);
    let rest = &line[colon + 1..];
    let bytes = rest.as_bytes();
    let mut i = 0;
    let mut at_name = true;
    while i < bytes.len() {
        if at_name && rest[i..].starts_with("URI=\"") {
            let start = i + 5;
            let Some(len) = rest[start..].find('"') else {
                out.push_str(&rest[i..]);
                return out;
            };
            let value = &rest[start..start + len];
            out.push_str("URI=\"");
            out.push_str(&with_param(value, param, "&").unwrap_or_else(|| value.to_string()));
            out.push('"');
            i = start + len + 1;
            at_name = false;
            continue;
        }
        let c = bytes[i];
        if c == b'"' {
            // Skip a quoted string whole.
            match rest[i + 1..].find('"') {
                Some(len) => {
                    out.push_str(&rest[i..i + len + 2]);
                    i += len + 2;
                }
                None => {
                    out.push_str(&rest[i..]);
                    return out;
                }
            }
            at_name = false;
            continue;
        }
        at_name = c == b',';
        let ch = rest[i..].chars().next().unwrap_or_default();
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

/// DASH: the text of each `<BaseURL>` element and the `media`, `initialization`
/// and `sourceURL` attributes of every element (namespace prefixes allowed);
/// comments, CDATA, processing instructions and everything else pass byte for
/// byte. A `<BaseURL>` that names a directory (ends in `/`) is left alone: the
/// references resolved against it carry the token themselves.
pub fn rewrite_dash(text: &str, param: &str) -> String {
    let mut out = String::with_capacity(text.len() + 256);
    let mut rest = text;
    while let Some(lt) = rest.find('<') {
        let (before, from) = rest.split_at(lt);
        out.push_str(before);
        // Markup that is not an element: copied through to its end.
        for (open, close) in [
            ("<!--", "-->"),
            ("<![CDATA[", "]]>"),
            ("<?", "?>"),
            ("<!", ">"),
        ] {
            if let Some(inner) = from.strip_prefix(open) {
                let end = inner
                    .find(close)
                    .map_or(from.len(), |i| open.len() + i + close.len());
                out.push_str(&from[..end]);
                rest = &from[end..];
                break;
            }
        }
        if from.starts_with("<!") || from.starts_with("<?") {
            continue;
        }
        let Some(tag_len) = tag_end(from) else {
            out.push_str(from);
            return out;
        };
        let tag = &from[..tag_len];
        out.push_str(&rewrite_tag_attributes(tag, param));
        rest = &from[tag_len..];
        if local_name(tag) == "BaseURL" && !tag.starts_with("</") && !tag.ends_with("/>") {
            let text_end = rest.find('<').unwrap_or(rest.len());
            let value = &rest[..text_end];
            let directory = value.trim().ends_with('/');
            match (!directory)
                .then(|| with_param(value, param, "&amp;"))
                .flatten()
            {
                Some(v) => out.push_str(&v),
                None => out.push_str(value),
            }
            rest = &rest[text_end..];
        }
    }
    out.push_str(rest);
    out
}

/// The length of the tag at the start of `s` (through its `>`), quotes respected.
fn tag_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// The element name of a tag without its namespace prefix.
fn local_name(tag: &str) -> &str {
    let name = tag
        .trim_start_matches('<')
        .trim_start_matches('/')
        .split(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .next()
        .unwrap_or("");
    name.rsplit(':').next().unwrap_or(name)
}

/// One element tag with its reference attributes rewritten.
fn rewrite_tag_attributes(tag: &str, param: &str) -> String {
    if tag.starts_with("</") {
        return tag.to_string();
    }
    let mut out = String::with_capacity(tag.len() + 64);
    let mut rest = tag;
    loop {
        // The next `name=` followed by a quote, outside any quoted value.
        let Some((eq, quote)) = next_attribute(rest) else {
            out.push_str(rest);
            return out;
        };
        let name_start = rest[..eq]
            .trim_end()
            .rfind(|c: char| c.is_whitespace())
            .map_or(0, |i| i + 1);
        let name = rest[name_start..eq].trim();
        let value_start = rest[eq..].find(quote).map_or(rest.len(), |i| eq + i + 1);
        let Some(len) = rest[value_start..].find(quote) else {
            out.push_str(rest);
            return out;
        };
        let value = &rest[value_start..value_start + len];
        out.push_str(&rest[..value_start]);
        let local = name.rsplit(':').next().unwrap_or(name);
        let rewritten = matches!(local, "media" | "initialization" | "sourceURL")
            .then(|| with_param(value, param, "&amp;"))
            .flatten();
        out.push_str(rewritten.as_deref().unwrap_or(value));
        out.push(quote);
        rest = &rest[value_start + len + 1..];
    }
}

/// The index of the next `=` that opens a quoted attribute value, and its quote.
fn next_attribute(s: &str) -> Option<(usize, char)> {
    let eq = s.find('=')?;
    let quote = s[eq + 1..].trim_start().chars().next()?;
    match quote {
        '"' | '\'' => Some((eq, quote)),
        _ => next_attribute(&s[eq + 1..]).map(|(i, q)| (eq + 1 + i, q)),
    }
}

/// A body read whole, refused past [`MAX_MANIFEST`] bytes.
async fn collect(mut body: Body) -> Result<Bytes, BoxError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if (buf.len() + data.len()) as u64 > MAX_MANIFEST {
                return Err("manifest larger than the rewriting limit".into());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Token propagation for one request: made when the request carried a token in
/// its query (and the server checked it).
#[derive(Clone, Debug)]
pub struct Propagation {
    param: String,
}

impl Propagation {
    /// The propagation a request asks for: Some when its query holds `__token__`.
    pub fn of(uri: &Uri) -> Option<Propagation> {
        let token = token::query_token(uri.query()?)?;
        Some(Propagation {
            param: token_param(&token),
        })
    }

    /// Removes `Range` and `If-Range` from the request of a manifest path, so its
    /// answer is whole and can be rewritten (see the module's documentation).
    pub fn whole_manifest(&self, path: &str, headers: &mut HeaderMap) {
        if is_manifest_path(path) {
            headers.remove(header::RANGE);
            headers.remove(header::IF_RANGE);
        }
    }

    /// The answer to a GET or HEAD with its manifest rewritten, if it is a whole
    /// `200` manifest answer; any other answer as it is.
    pub async fn apply(&self, method: &Method, resp: Response<Body>) -> Response<Body> {
        if resp.status() != StatusCode::OK {
            return resp;
        }
        let Some(kind) = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(kind_of)
        else {
            return resp;
        };
        let length = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if length.is_some_and(|l| l > MAX_MANIFEST) {
            tracing::warn!(
                length,
                "manifest too large to carry the token; sent as stored"
            );
            return resp;
        }
        let (mut parts, body) = resp.into_parts();
        if method == Method::HEAD {
            // The rewritten length is unknown without the body; a HEAD answer may
            // leave Content-Length out (RFC 9110 §8.6) but must not state a wrong one.
            parts.headers.remove(header::CONTENT_LENGTH);
            self.retag(&mut parts.headers);
            return Response::from_parts(parts, body);
        }
        let bytes = match collect(body).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "manifest body failed while read for rewriting");
                return json_error(
                    ErrorCode::ManifestUnreadable,
                    "the manifest could not be read whole",
                );
            }
        };
        let Ok(text) = std::str::from_utf8(&bytes) else {
            return Response::from_parts(parts, full(bytes));
        };
        let rewritten = rewrite(kind, text, &self.param);
        if rewritten == text {
            return Response::from_parts(parts, full(bytes));
        }
        let body = Bytes::from(rewritten);
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        self.retag(&mut parts.headers);
        Response::from_parts(parts, full(body))
    }

    /// Headers of a rewritten answer: an entity tag of its own (the stored one's
    /// opaque part and a hash of the token), no digest of the stored bytes, and no
    /// ranges offered.
    fn retag(&self, h: &mut HeaderMap) {
        if let Some(tag) = h.get(header::ETAG).and_then(|v| v.to_str().ok()) {
            let (weak, opaque) = match tag.strip_prefix("W/") {
                Some(t) => ("W/", t),
                None => ("", tag),
            };
            let opaque = opaque.trim_matches('"');
            let digest = Sha256::digest(self.param.as_bytes());
            let derived = format!("{weak}\"{opaque}.t{}\"", hex::encode(&digest[..8]));
            match HeaderValue::from_str(&derived) {
                Ok(v) => {
                    h.insert(header::ETAG, v);
                }
                Err(_) => {
                    h.remove(header::ETAG);
                }
            }
        }
        for name in ["content-md5", "digest", "content-digest", "repr-digest"] {
            h.remove(name);
        }
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: &str = "__token__=exp=9~acl=/v1/objects/t/*~hmac=ab";

    #[test]
    fn token_params_are_safe_in_quotes_and_xml() {
        assert_eq!(
            token_param("exp=9~acl=/a/*!/b~data=regions:eu,us~hmac=00"),
            "__token__=exp=9~acl=%2Fa%2F*!%2Fb~data=regions:eu,us~hmac=00"
        );
        assert_eq!(token_param("a b+c#d%"), "__token__=a%20b%2Bc%23d%25");
        assert_eq!(token_param("a\"b&c<d e"), "__token__=a%22b%26c%3Cd%20e");
    }

    #[test]
    fn kinds_come_from_media_types() {
        assert_eq!(kind_of("application/vnd.apple.mpegurl"), Some(Kind::Hls));
        assert_eq!(
            kind_of("Application/X-MpegURL; charset=utf-8"),
            Some(Kind::Hls)
        );
        assert_eq!(kind_of("application/dash+xml"), Some(Kind::Dash));
        assert_eq!(kind_of("video/mp4"), None);
        assert!(is_manifest_path("/v1/objects/sha256/ab/x.m3u8"));
        assert!(is_manifest_path("/v1/objects/x.mpd"));
        assert!(!is_manifest_path("/v1/objects/x.mp4"));
    }

    #[test]
    fn hls_uri_lines_and_uri_attributes_carry_the_token() {
        let playlist = "#EXTM3U\r\n#EXT-X-VERSION:7\r\n#EXT-X-INDEPENDENT-SEGMENTS\r\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"x,URI=no\",URI=\"audio.m3u8\"\r\n\
            #EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.64001f,mp4a.40.2\",AUDIO=\"a\"\r\n\
            v720.m3u8\r\n\
            #EXT-X-MAP:URI=\"../r/v.mp4\",BYTERANGE=\"812@0\"\r\n\
            #EXT-X-BYTERANGE:1000@812\r\n\
            v.mp4?x=1\r\n\
            https://elsewhere.example/v.mp4\r\n\
            //elsewhere.example/v.mp4\r\n\
            #EXT-X-KEY:METHOD=NONE\r\n\
            # a comment v.mp4\r\n\
            /v1/objects/x.mp4#frag\r\n\
            \r\n";
        let got = rewrite_hls(playlist, P);
        let want = format!(
            "#EXTM3U\r\n#EXT-X-VERSION:7\r\n#EXT-X-INDEPENDENT-SEGMENTS\r\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"x,URI=no\",URI=\"audio.m3u8?{P}\"\r\n\
            #EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.64001f,mp4a.40.2\",AUDIO=\"a\"\r\n\
            v720.m3u8?{P}\r\n\
            #EXT-X-MAP:URI=\"../r/v.mp4?{P}\",BYTERANGE=\"812@0\"\r\n\
            #EXT-X-BYTERANGE:1000@812\r\n\
            v.mp4?x=1&{P}\r\n\
            https://elsewhere.example/v.mp4\r\n\
            //elsewhere.example/v.mp4\r\n\
            #EXT-X-KEY:METHOD=NONE\r\n\
            # a comment v.mp4\r\n\
            /v1/objects/x.mp4?{P}#frag\r\n\
            \r\n"
        );
        assert_eq!(got, want);
        // A reference that already carries a token keeps it (and is not doubled).
        assert_eq!(
            rewrite_hls("v.mp4?__token__=old\n", P),
            "v.mp4?__token__=old\n"
        );
        assert_eq!(rewrite_hls(&got, P), got);
    }

    #[test]
    fn dash_base_urls_and_reference_attributes_carry_the_token() {
        let mpd = r#"<?xml version="1.0" encoding="utf-8"?>
<!-- <BaseURL>commented.mp4</BaseURL> media="no" -->
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">
  <BaseURL>dir/</BaseURL>
  <Period>
    <AdaptationSet mimeType="video/mp4">
      <SegmentTemplate media="seg-$Number$.m4s" initialization='init.mp4' timescale="1000"/>
      <Representation id="1" bandwidth="800000">
        <BaseURL> v.mp4 </BaseURL>
        <SegmentBase indexRange="812-999"><Initialization range="0-811"/></SegmentBase>
        <SegmentList><Initialization sourceURL="v.mp4?a=1"/>
          <SegmentURL media="v.mp4" mediaRange="1000-1999"/>
          <SegmentURL media="https://cdn.example/v.mp4" mediaRange="2000-2999"/>
        </SegmentList>
      </Representation>
      <Representation id="2"><dash:BaseURL>w.mp4</dash:BaseURL></Representation>
    </AdaptationSet>
  </Period>
</MPD>
"#;
        let got = rewrite_dash(mpd, P);
        let want = mpd
            .replace("seg-$Number$.m4s\"", &format!("seg-$Number$.m4s?{P}\""))
            .replace("'init.mp4'", &format!("'init.mp4?{P}'"))
            .replace(" v.mp4 <", &format!(" v.mp4?{P} <"))
            .replace("v.mp4?a=1", &format!("v.mp4?a=1&amp;{P}"))
            .replace("media=\"v.mp4\"", &format!("media=\"v.mp4?{P}\""))
            .replace(">w.mp4<", &format!(">w.mp4?{P}<"));
        assert_eq!(got, want);
        assert!(got.contains("<!-- <BaseURL>commented.mp4</BaseURL> media=\"no\" -->"));
        assert!(got.contains("<BaseURL>dir/</BaseURL>"));
        assert!(got.contains("mediaRange=\"1000-1999\""));
        assert_eq!(rewrite_dash(&got, P), got);
    }

    #[test]
    fn broken_markup_passes_through() {
        for s in ["<MPD", "<BaseURL>x", "<a media=\"x", "<!-- open", "<a b=c>"] {
            let got = rewrite_dash(s, P);
            assert!(got.starts_with(&s[..s.len().min(4)]), "{s:?} → {got:?}");
        }
        assert_eq!(
            rewrite_hls("#EXT-X-MAP:URI=\"open", P),
            "#EXT-X-MAP:URI=\"open"
        );
    }

    proptest! {
        /// Text with no relative reference in it comes out byte for byte.
        #[test]
        fn manifests_without_references_round_trip(
            tags in proptest::collection::vec("#[A-Z-]{0,12}(:[A-Z=0-9,]{0,20})?(\r?\n)?", 0..20),
            xml in "[^<]{0,40}(<[a-zA-Z]{1,8}( [a-z]{1,6}=\"[^\"]{0,10}\")*/?>[^<]{0,20})*",
        ) {
            let hls: String = tags.concat();
            prop_assert_eq!(rewrite_hls(&hls, P), hls.clone());
            let skip = ["media=", "initialization=", "sourceurl=", "baseurl"];
            if !skip.iter().any(|s| xml.to_ascii_lowercase().contains(s)) {
                prop_assert_eq!(rewrite_dash(&xml, P), xml.clone());
            }
        }

        /// Any HLS text survives a rewrite with its lines and tags in place (`?`
        /// left out: an empty query `a?` comes out as `a?<token>`).
        #[test]
        fn hls_rewriting_keeps_every_line(text in "[ ->@-~\r\n]{0,300}") {
            let got = rewrite_hls(&text, P);
            prop_assert_eq!(got.matches('\n').count(), text.matches('\n').count());
            let stripped = got.replace(&format!("&{P}"), "").replace(&format!("?{P}"), "");
            prop_assert_eq!(stripped, text.clone());
        }

        /// Any DASH text survives a rewrite: removing the token gives it back.
        #[test]
        fn dash_rewriting_only_adds_the_token(text in "[ ->@-~\n]{0,300}") {
            let got = rewrite_dash(&text, P);
            let stripped = got.replace(&format!("&amp;{P}"), "").replace(&format!("?{P}"), "");
            prop_assert_eq!(stripped, text.clone());
        }
    }
}
