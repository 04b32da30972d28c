//! Reading canonical JSON text into a message, with one limit on how deeply it may nest.
//!
//! serde_json refuses 128 levels or more (its recursion limit) and parses fewer safely, but
//! a message cannot be that deep in practice: prost decodes at most 100 nested messages, and a
//! `google.protobuf.Value` spends two of them per JSON level. So every JSON message is checked
//! against a smaller, configurable depth first, in one pass that only counts brackets; a
//! document 100,000 levels deep is refused after reading `max_depth + 1` of them.

use std::fmt;

use serde::de::DeserializeOwned;

/// The default limit on the nesting of a JSON message: objects and arrays inside each other,
/// the message's own braces being level 1. `{"a": {"b": [1]}}` is 3 levels deep. 64: a
/// `google.protobuf.Value` as deep as the state store keeps (31 levels) still fits in its
/// deepest request (a Sync write of a transaction wraps it in 7 more).
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// The deepest nesting the parser takes whatever the limit (below serde_json's recursion
/// limit of 128).
pub const PARSER_MAX_DEPTH: usize = 127;

/// Why a JSON message was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// It nests deeper than the limit.
    TooDeep {
        /// The limit.
        max_depth: usize,
    },
    /// It is not JSON, or not JSON for this message type.
    Invalid(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooDeep { max_depth } => {
                write!(f, "the JSON nests objects and arrays more than {max_depth} levels deep")
            }
            Self::Invalid(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for ReadError {}

/// Reads `json` as a `T`, refusing nesting deeper than `max_depth`.
pub fn from_slice<T: DeserializeOwned>(json: &[u8], max_depth: usize) -> Result<T, ReadError> {
    check_depth(json, max_depth)?;
    serde_json::from_slice(json).map_err(|e| ReadError::Invalid(e.to_string()))
}

/// Fails if `json` nests objects and arrays more than `max_depth` levels. Counts brackets
/// outside strings only; says nothing else about whether `json` is valid.
pub fn check_depth(json: &[u8], max_depth: usize) -> Result<(), ReadError> {
    // Most messages open fewer objects and arrays in all than the limit (counting brackets in
    // strings too, which only errs towards the exact scan): then they cannot nest deeper.
    // This count is one vectorized pass, a fraction of the cost of the exact scan below.
    if openers(json) <= max_depth {
        return Ok(());
    }
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        match b {
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Err(ReadError::TooDeep { max_depth });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                // Skip the string: to the next quote that no backslash escapes.
                loop {
                    let rest = json.get(i + 1..).unwrap_or_default();
                    match memchr::memchr2(b'"', b'\\', rest) {
                        // An escape: skip it and the character it escapes.
                        Some(at) if rest[at] == b'\\' => i += at + 2,
                        Some(at) => {
                            i += at + 1;
                            break;
                        }
                        None => return Ok(()),
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// How many `[` and `{` bytes `json` has. Written for the vectorizer: one comparison per byte
/// (`[` and `{` differ only in bit 0x20) and byte-wide sums over chunks that cannot overflow.
fn openers(json: &[u8]) -> usize {
    json.chunks(255).map(|chunk| usize::from(chunk.iter().fold(0u8, |n, &b| n + u8::from(b | 0x20 == b'{')))).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_levels_outside_strings() {
        assert_eq!(check_depth(br#"{"a": {"b": [1]}}"#, 3), Ok(()));
        assert_eq!(check_depth(br#"{"a": {"b": [1]}}"#, 2), Err(ReadError::TooDeep { max_depth: 2 }));
        assert_eq!(check_depth(br#"[[], [], {}, [[]]]"#, 3), Ok(()));
        assert!(check_depth(br#"[[], [], {}, [[[]]]]"#, 3).is_err());
        // Brackets in strings, escaped quotes and backslashes do not count.
        assert_eq!(check_depth(br#"{"[[[[": "{{{{\"[[[[\\", "k": ["\\\""]}"#, 2), Ok(()));
        assert!(check_depth(br#"{"a\\": [[1]]}"#, 2).is_err());
        // Unterminated strings and stray closers are for the parser to refuse.
        assert_eq!(check_depth(br#"{"abc"#, 1), Ok(()));
        assert_eq!(check_depth(br#"{"a\"#, 1), Ok(()));
        assert_eq!(check_depth(b"]]]]{", 1), Ok(()));
        assert_eq!(check_depth(b"", 0), Ok(()));
    }

    #[test]
    fn counts_openers_exactly() {
        let text: Vec<u8> = (0..2000u32).map(|i| b"[{]}\"a;[{"[(i % 9) as usize]).collect();
        let naive = text.iter().filter(|&&b| b == b'[' || b == b'{').count();
        assert_eq!(openers(&text), naive);
        assert_eq!(openers(&[b'{'; 600]), 600);
        assert_eq!(openers(b""), 0);
    }

    #[test]
    fn a_hundred_thousand_levels_are_refused_quickly() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert_eq!(check_depth(deep.as_bytes(), 32), Err(ReadError::TooDeep { max_depth: 32 }));
        let err = from_slice::<serde_json::Value>(deep.as_bytes(), 32).unwrap_err();
        assert_eq!(err.to_string(), "the JSON nests objects and arrays more than 32 levels deep");
        let ok = "[".repeat(32) + &"]".repeat(32);
        assert!(from_slice::<serde_json::Value>(ok.as_bytes(), 32).is_ok());
    }
}
