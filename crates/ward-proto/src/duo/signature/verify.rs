//! Server-side verification (duo-protocol §1.5 steps 6–8).

use super::{
    EMPTY_SHA512_HEX, Keyed, SigDigest, SigVersion, sends_body, sha512_hex,
    x_duo_headers_sha512_hex,
};
use crate::duo::params::Params;

/// The raw parts of a received request that a signature may cover.
///
/// Everything is taken as received: the path still percent-encoded, the query unparsed, the
/// body as the exact bytes that arrived, the date header byte for byte.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// The HTTP method (any case).
    pub method: &'a str,
    /// The request-target path before `?`, not percent-decoded.
    pub raw_path: &'a str,
    /// The request-target after the first `?` (empty when there is none).
    pub raw_query: &'a str,
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// The raw request body.
    pub body: &'a [u8],
    /// `X-Duo-Date` if present, else `Date`, byte for byte; `None` when neither was sent.
    pub date: Option<&'a str>,
    /// Every received `X-Duo-*` header (name, value); other names are ignored.
    pub x_duo_headers: &'a [(String, String)],
    /// Host names the client may have signed: the configured API hostnames, the `Host`
    /// header, and the `Host` header without its port. Each is tried as given and lowercased.
    pub hosts: &'a [String],
}

/// Checks `signature_hex` against every canonical string the request could have been signed
/// with (duo-protocol §1.5 step 7) and returns the version that matched.
///
/// - POST/PUT/PATCH with a JSON body: v5 and v4 over the raw body, params line empty.
/// - POST/PUT/PATCH with a form body: v2 and v1 over the body's parameters.
/// - POST/PUT/PATCH with another or no `Content-Type`: both of the above.
/// - Any other method: v5, v4 (with the empty-body hash), v2 and v1 over the query.
///
/// v1 is tried only when `allow_v1`; v2, v4 and v5 only when a date was sent. Parameter lines
/// are tried in Python's order, then Go's raw-sorted order and libduo's whole-pair order when
/// those differ; v5 header lines with all `X-Duo-*` headers, without `X-Duo-Date`, and with none.
///
/// This does not check the date's freshness: the caller does, for the versions that sign it.
///
/// # Security
///
/// Each candidate's HMAC is compared in constant time. The key schedule and the body hash are
/// computed once per call, not per candidate.
pub fn verify(
    req: &SignedRequest<'_>,
    skey: &[u8],
    signature_hex: &str,
    allow_v1: bool,
) -> Option<SigVersion> {
    let digest = SigDigest::from_hex_len(signature_hex.len())?;
    let expected = hex::decode(signature_hex).ok()?;
    let keyed = Keyed::new(skey, digest)?;
    let plan = Plan::new(req, allow_v1);
    let method = req.method.to_uppercase();
    host_variants(req.hosts).into_iter().find_map(|host| {
        let prefix = Prefix {
            method: &method,
            host: &host,
            path: req.raw_path,
        };
        plan.try_host(&keyed, &prefix, &expected)
    })
}

/// The host names a client may have signed (duo-protocol §1.5 step 5): each configured API hostname
/// and the received `Host` header, each with and without a `:port` suffix, in that order and
/// without repeats. [`verify`] also tries each lowercased.
///
/// Python signs the bare configured host, Go and `Net::Duo` the host with its port, `duo_unix`
/// 1.x the bare host without lowercasing it.
pub fn host_candidates(configured: &[String], host_header: Option<&str>) -> Vec<String> {
    let mut hosts = Vec::with_capacity(configured.len() * 2 + 2);
    let received = host_header.map(str::trim).filter(|h| !h.is_empty());
    for host in configured.iter().map(String::as_str).chain(received) {
        push_unique(&mut hosts, host.to_owned());
        push_unique(&mut hosts, strip_port(host).to_owned());
    }
    hosts
}

/// `name:port` → `name`; `[v6]:port` → `[v6]`; anything else unchanged.
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port))
            if !name.is_empty()
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!name.contains(':') || name.ends_with(']')) =>
        {
            name
        }
        _ => host,
    }
}

/// The request parts that do not depend on the host, computed once.
struct Plan<'a> {
    date: Option<&'a str>,
    allow_v1: bool,
    /// Parameter lines for v1/v2; empty when those versions do not apply.
    legacy: Vec<String>,
    /// (parameter line, body hash) for v4/v5; empty when those versions do not apply.
    modern: Vec<(String, String)>,
    /// v5 header-line choices.
    header_hashes: Vec<String>,
}

#[derive(Clone, Copy)]
enum BodyKind {
    Json,
    Form,
    Other,
}

impl<'a> Plan<'a> {
    fn new(req: &SignedRequest<'a>, allow_v1: bool) -> Self {
        let mut legacy = Vec::new();
        let mut modern = Vec::new();
        if sends_body(req.method) {
            let kind = body_kind(req.content_type);
            if matches!(kind, BodyKind::Json | BodyKind::Other) {
                modern.push((String::new(), sha512_hex(req.body)));
            }
            if matches!(kind, BodyKind::Form | BodyKind::Other) {
                legacy = param_lines(req.body);
            }
        } else {
            legacy = param_lines(req.raw_query.as_bytes());
            modern = legacy
                .iter()
                .map(|line| (line.clone(), EMPTY_SHA512_HEX.to_owned()))
                .collect();
        }
        let header_hashes = if modern.is_empty() || req.date.is_none() {
            Vec::new()
        } else {
            header_hash_choices(req.x_duo_headers)
        };
        Self {
            date: req.date,
            allow_v1,
            legacy,
            modern,
            header_hashes,
        }
    }

    /// Tries v5, v4, v2 then v1 (most to least common) for one host spelling.
    fn try_host(&self, keyed: &Keyed, prefix: &Prefix<'_>, expected: &[u8]) -> Option<SigVersion> {
        if let Some(date) = self.date {
            for (params, body_hash) in &self.modern {
                let mut v4 = keyed.clone();
                v4.lines(&[
                    date,
                    prefix.method,
                    prefix.host,
                    prefix.path,
                    params,
                    body_hash,
                ]);
                for header_hash in &self.header_hashes {
                    let mut v5 = v4.clone();
                    v5.update(b"\n");
                    v5.update(header_hash.as_bytes());
                    if v5.matches(expected) {
                        return Some(SigVersion::V5);
                    }
                }
                if v4.matches(expected) {
                    return Some(SigVersion::V4);
                }
            }
            for params in &self.legacy {
                let mut v2 = keyed.clone();
                v2.lines(&[date, prefix.method, prefix.host, prefix.path, params]);
                if v2.matches(expected) {
                    return Some(SigVersion::V2);
                }
            }
        }
        if self.allow_v1 {
            for params in &self.legacy {
                let mut v1 = keyed.clone();
                v1.lines(&[prefix.method, prefix.host, prefix.path, params]);
                if v1.matches(expected) {
                    return Some(SigVersion::V1);
                }
            }
        }
        None
    }
}

struct Prefix<'a> {
    method: &'a str,
    host: &'a str,
    path: &'a str,
}

fn body_kind(content_type: Option<&str>) -> BodyKind {
    let Some(content_type) = content_type else {
        return BodyKind::Other;
    };
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    if mime.eq_ignore_ascii_case("application/json") {
        BodyKind::Json
    } else if mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        BodyKind::Form
    } else {
        BodyKind::Other
    }
}

/// The distinct canonical parameter lines the clients could have produced; none when the
/// input is not acceptable parameters at all.
fn param_lines(input: &[u8]) -> Vec<String> {
    let Ok(params) = Params::from_urlencoded(input) else {
        return Vec::new();
    };
    let mut lines = vec![params.canonical()];
    if params.len() > 1 {
        push_unique(&mut lines, params.canonical_raw_sorted());
        push_unique(&mut lines, params.canonical_pair_sorted());
    }
    lines
}

/// v5 header-line choices in duo-protocol §1.3 order: all `X-Duo-*` headers, all but `X-Duo-Date`,
/// none.
fn header_hash_choices(received: &[(String, String)]) -> Vec<String> {
    let all: Vec<(String, String)> = received
        .iter()
        .filter(|(name, _)| is_x_duo(name))
        .cloned()
        .collect();
    let without_date: Vec<(String, String)> = all
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("x-duo-date"))
        .cloned()
        .collect();
    let mut choices = Vec::with_capacity(3);
    if !all.is_empty() {
        choices.push(x_duo_headers_sha512_hex(&all));
    }
    if !without_date.is_empty() && without_date.len() < all.len() {
        push_unique(&mut choices, x_duo_headers_sha512_hex(&without_date));
    }
    push_unique(&mut choices, EMPTY_SHA512_HEX.to_owned());
    choices
}

fn is_x_duo(name: &str) -> bool {
    name.get(..6)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("x-duo-"))
}

/// Each host as given, then lowercased, without repeats.
fn host_variants(hosts: &[String]) -> Vec<String> {
    let mut variants = Vec::with_capacity(hosts.len() * 2);
    for host in hosts {
        push_unique(&mut variants, host.clone());
        push_unique(&mut variants, host.to_lowercase());
    }
    variants
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}
