//! Method patterns: which calls a key may make, and which need no key.
//!
//! A pattern is a method path (`package.Service/Method`, the leading `/` optional) with at
//! most one `*`, which stands for any run of characters: `*` (every method),
//! `portway.state.v1.StateService/*` (one service), `portway.state.*` (a package and what is
//! under it), `*/Get` (`Get` of any service). Written by hand rather than with a glob crate:
//! one wildcard is a prefix and a suffix test, and the full glob languages (character
//! classes, `**`, braces) mean nothing for method names.

use std::fmt;

/// One parsed pattern.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct MethodPattern {
    prefix: String,
    /// `None`: no wildcard, the path must equal `prefix`.
    suffix: Option<String>,
}

impl MethodPattern {
    /// Parses a pattern; the error completes the sentence "method pattern X ...".
    pub(crate) fn parse(text: &str) -> Result<Self, &'static str> {
        let text = text.trim();
        let body = text.strip_prefix('/').unwrap_or(text);
        if body.is_empty() {
            return Err("is empty");
        }
        if body.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("contains white space");
        }
        let mut parts = body.splitn(2, '*');
        let prefix = format!("/{}", parts.next().unwrap_or_default());
        let suffix = parts.next().map(str::to_owned);
        if suffix.as_deref().is_some_and(|s| s.contains('*')) {
            return Err("has more than one `*`");
        }
        if suffix.is_none() && body.matches('/').count() != 1 {
            return Err("is not `package.Service/Method` (or use a `*`)");
        }
        Ok(Self { prefix, suffix })
    }

    /// Whether `path` (`/package.Service/Method`) matches. A path of any other shape (more
    /// segments, say) matches no pattern, so `*` never stretches across a `/` it should not.
    pub(crate) fn matches(&self, path: &str) -> bool {
        if path.bytes().filter(|&b| b == b'/').count() != 2 || !path.starts_with('/') {
            return false;
        }
        match &self.suffix {
            None => path == self.prefix,
            Some(suffix) => {
                path.len() >= self.prefix.len() + suffix.len()
                    && path.starts_with(&self.prefix)
                    && path.ends_with(suffix.as_str())
            }
        }
    }
}

impl fmt::Debug for MethodPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.suffix {
            None => write!(f, "{}", self.prefix),
            Some(s) => write!(f, "{}*{s}", self.prefix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, path: &str) -> bool {
        MethodPattern::parse(p).unwrap().matches(path)
    }

    #[test]
    fn matching() {
        let get = "/portway.state.v1.StateService/Get";
        assert!(m("portway.state.v1.StateService/Get", get));
        assert!(m("/portway.state.v1.StateService/Get", get));
        assert!(!m("portway.state.v1.StateService/Ge", get));
        assert!(!m("portway.state.v1.StateService/GetMore", get));
        assert!(m("portway.state.v1.StateService/*", get));
        assert!(m("portway.state.*", get));
        assert!(m("*", get));
        assert!(m("*/Get", get));
        assert!(!m("*/Put", get));
        assert!(!m("portway.state.v1.State/*", get), "a service name is not a prefix of another");
        assert!(m("portway.state.v1.StateService/Get*", get));
        // The prefix and suffix may not overlap.
        assert!(!m("a.S/M*M", "/a.S/M"));
        assert!(m("a.S/M*M", "/a.S/MM"));
        assert!(!m("a*", "/a.S/M/extra"), "only package.Service/Method paths match");
        assert!(!m("*", "/no-method"));
    }

    #[test]
    fn refused() {
        for bad in ["", "/", "a*b*c", "no-slash", "a/b/c", "with space/x"] {
            assert!(MethodPattern::parse(bad).is_err(), "{bad:?}");
        }
    }
}
