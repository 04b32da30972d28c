//! The key file: which API keys exist, what each may call, and its own limits. Keys are kept
//! in memory only as SHA-256 digests; a presented key is hashed and compared with every
//! digest in constant time, so neither the comparison nor the lookup tells how close a guess
//! was or which key it resembled.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::pattern::{Pattern, Target};

/// A SHA-256 digest.
pub(crate) type Digest = [u8; 32];

/// A key file could not be used; the message is a sentence that names the problem.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyFileError(String);

/// One API key, as the gateway keeps it.
#[derive(Debug)]
pub struct ApiKey {
    /// Its name in logs and error messages (never the key itself).
    pub id: String,
    pub(crate) digest: Digest,
    pub(crate) methods: Vec<Pattern>,
    /// Calls per second this key may make (its own quota; `None`: the gateway's default).
    pub rate_per_second: Option<u32>,
    /// Calls this key may make at once beyond its steady rate (`None`: equal to the rate).
    pub burst: Option<u32>,
    /// Calls of this key open at once (`None`: the gateway's default).
    pub max_concurrent: Option<u32>,
    /// Whether every call with this key must be signed (see `docs/auth.md`).
    pub require_signature: bool,
}

impl ApiKey {
    /// Whether this key may call `path` (`/package.Service/Method`).
    pub fn allows(&self, path: &str) -> bool {
        self.covers(Target::Call(path))
    }

    /// Whether this key may reach `target` (a call or a plain HTTP route).
    pub(crate) fn covers(&self, target: Target<'_>) -> bool {
        self.methods.iter().any(|p| p.matches(target))
    }

    /// The HMAC secret of signed calls made with this key: the key's SHA-256 digest.
    pub(crate) fn signing_secret(&self) -> &Digest {
        &self.digest
    }
}

/// The parsed key file: keys, and the methods and plain HTTP routes that need none.
#[derive(Debug)]
pub struct KeySet {
    pub(crate) keys: Vec<ApiKey>,
    pub(crate) exempt: Vec<Pattern>,
}

/// What needs no key when the key file has no `exempt` list: the health service (load
/// balancers call it without credentials) and the plain HTTP routes (`/healthz`, `/metrics`,
/// the demo's files), as before the key file could name them.
pub const DEFAULT_EXEMPT: &[&str] = &["grpc.health.v1.Health/*", "/healthz", "/metrics", "/"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    exempt: Option<Vec<String>>,
    #[serde(default, rename = "key")]
    keys: Vec<KeyFormat>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFormat {
    id: String,
    key: Option<String>,
    sha256: Option<String>,
    methods: Vec<String>,
    rate_per_second: Option<u32>,
    burst: Option<u32>,
    max_concurrent: Option<u32>,
    #[serde(default)]
    require_signature: bool,
}

impl KeySet {
    /// Reads a key file (TOML, described in `docs/auth.md`).
    pub fn from_file(path: &Path) -> Result<Self, KeyFileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| KeyFileError(format!("cannot read the API key file {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|KeyFileError(why)| KeyFileError(format!("{}: {why}", path.display())))
    }

    /// Parses a key file's text (from a file, or from an environment variable).
    pub fn parse(text: &str) -> Result<Self, KeyFileError> {
        let file: FileFormat = toml::from_str(text).map_err(|e| KeyFileError(format!("invalid key file: {e}")))?;
        let exempt = match file.exempt {
            Some(list) => list.iter().map(|p| pattern(p, "exempt")).collect::<Result<_, _>>()?,
            None => DEFAULT_EXEMPT.iter().map(|p| pattern(p, "exempt")).collect::<Result<_, _>>()?,
        };
        let mut keys: Vec<ApiKey> = Vec::with_capacity(file.keys.len());
        for k in file.keys {
            let digest = match (k.key, k.sha256) {
                (Some(key), None) if !key.is_empty() => sha256(key.as_bytes()),
                (None, Some(hex_digest)) => parse_digest(&hex_digest)
                    .ok_or_else(|| KeyFileError(format!("key {:?}: sha256 must be 64 hexadecimal digits", k.id)))?,
                _ => return Err(KeyFileError(format!("key {:?}: give exactly one of `key` or `sha256`", k.id))),
            };
            if k.id.is_empty() {
                return Err(KeyFileError("a key has an empty id".into()));
            }
            if keys.iter().any(|o| o.id == k.id) {
                return Err(KeyFileError(format!("key id {:?} appears twice", k.id)));
            }
            if keys.iter().any(|o| o.digest == digest) {
                return Err(KeyFileError(format!("key {:?} is the same key as another", k.id)));
            }
            if k.rate_per_second == Some(0) || k.max_concurrent == Some(0) || k.burst == Some(0) {
                return Err(KeyFileError(format!("key {:?}: limits must be at least 1", k.id)));
            }
            let methods = k.methods.iter().map(|p| pattern(p, &k.id)).collect::<Result<_, _>>()?;
            keys.push(ApiKey {
                id: k.id,
                digest,
                methods,
                rate_per_second: k.rate_per_second,
                burst: k.burst,
                max_concurrent: k.max_concurrent,
                require_signature: k.require_signature,
            });
        }
        if keys.is_empty() {
            return Err(KeyFileError("the key file defines no key ([[key]] tables)".into()));
        }
        Ok(Self { keys, exempt })
    }

    /// The key whose digest is that of `presented`, if any. Every digest is compared, in
    /// constant time, whichever matches.
    pub(crate) fn find(&self, presented: &[u8]) -> Option<&ApiKey> {
        let digest = sha256(presented);
        self.find_digest(&digest)
    }

    fn find_digest(&self, digest: &Digest) -> Option<&ApiKey> {
        let mut found = None;
        for key in &self.keys {
            if bool::from(key.digest.ct_eq(digest)) {
                found = Some(key);
            }
        }
        found
    }

    /// The key named `id` (signed calls name their key instead of sending it).
    pub(crate) fn by_id(&self, id: &str) -> Option<&ApiKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Whether `target` needs no key.
    pub(crate) fn is_exempt(&self, target: Target<'_>) -> bool {
        self.exempt.iter().any(|p| p.matches(target))
    }

    /// The keys, in file order.
    pub fn keys(&self) -> &[ApiKey] {
        &self.keys
    }
}

fn pattern(text: &str, owner: &str) -> Result<Pattern, KeyFileError> {
    Pattern::parse(text).map_err(|why| KeyFileError(format!("{owner}: method pattern {text:?} {why}")))
}

pub(crate) fn sha256(bytes: &[u8]) -> Digest {
    Sha256::digest(bytes).into()
}

fn parse_digest(text: &str) -> Option<Digest> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::web::PlainRoute;

    const FILE: &str = r#"
        [[key]]
        id = "admin"
        key = "s3cret-admin"
        methods = ["*"]

        [[key]]
        id = "reader"
        sha256 = "3a6f2b6e8a4d8f5e5c3f8a1e0b9c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c"
        methods = ["portway.state.v1.StateService/Get", "/portway.state.v1.StateService/List"]
        rate_per_second = 5
    "#;

    #[test]
    fn parses_and_finds() {
        let set = KeySet::parse(FILE).unwrap();
        assert_eq!(set.keys().len(), 2);
        assert_eq!(set.find(b"s3cret-admin").map(|k| k.id.as_str()), Some("admin"));
        assert!(set.find(b"s3cret-admi").is_none());
        let reader = set.by_id("reader").unwrap();
        assert!(reader.allows("/portway.state.v1.StateService/List"));
        assert!(!reader.allows("/portway.state.v1.StateService/Put"));
        assert_eq!(reader.rate_per_second, Some(5));
        assert!(set.is_exempt(Target::Call("/grpc.health.v1.Health/Check")));
        assert!(!set.is_exempt(Target::Call("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")));
        for route in PlainRoute::ALL {
            assert!(set.is_exempt(Target::Route(route)), "without `exempt`, {route:?} stays open");
        }
    }

    #[test]
    fn refuses_what_cannot_work() {
        let bad = [
            ("", "defines no key"),
            ("[[key]]\nid = \"a\"\nmethods = []\n", "exactly one of"),
            ("[[key]]\nid = \"a\"\nkey = \"k\"\nsha256 = \"00\"\nmethods = []\n", "exactly one of"),
            ("[[key]]\nid = \"a\"\nsha256 = \"xyz\"\nmethods = []\n", "64 hexadecimal"),
            (
                "[[key]]\nid = \"a\"\nkey = \"k\"\nmethods = []\n[[key]]\nid = \"a\"\nkey = \"l\"\nmethods = []\n",
                "twice",
            ),
            (
                "[[key]]\nid = \"a\"\nkey = \"k\"\nmethods = []\n[[key]]\nid = \"b\"\nkey = \"k\"\nmethods = []\n",
                "same key",
            ),
            ("[[key]]\nid = \"a\"\nkey = \"k\"\nmethods = [\"a*b*c\"]\n", "pattern"),
            ("[[key]]\nid = \"a\"\nkey = \"k\"\nmethods = []\nrate_per_second = 0\n", "at least 1"),
            ("[[key]]\nid = \"a\"\nkey = \"k\"\nmethod = []\n", "unknown field"),
        ];
        for (text, needle) in bad {
            let err = KeySet::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn exempt_list_replaces_the_default() {
        let set = KeySet::parse("exempt = []\n[[key]]\nid = \"a\"\nkey = \"k\"\nmethods = []\n").unwrap();
        assert!(!set.is_exempt(Target::Call("/grpc.health.v1.Health/Check")));
        assert!(!set.is_exempt(Target::Route(PlainRoute::Metrics)));
        let file = "exempt = [\"/healthz\"]\n[[key]]\nid = \"a\"\nkey = \"k\"\nmethods = [\"/metrics\"]\n";
        let set = KeySet::parse(file).unwrap();
        assert!(set.is_exempt(Target::Route(PlainRoute::Health)));
        assert!(!set.is_exempt(Target::Route(PlainRoute::Files)));
        assert!(set.keys()[0].covers(Target::Route(PlainRoute::Metrics)));
        assert!(!set.keys()[0].covers(Target::Route(PlainRoute::Files)));
    }
}
