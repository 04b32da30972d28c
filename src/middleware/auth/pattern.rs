//! Patterns: which calls and plain HTTP routes a key may reach, and which need no key.
//!
//! A method pattern is a method path (`package.Service/Method`, the leading `/` optional)
//! with at most one `*`, which stands for any run of characters: `*` (every method),
//! `portway.state.v1.StateService/*` (one service), `portway.state.*` (a package and what is
//! under it), `*/Get` (`Get` of any service). Written by hand rather than with a glob crate:
//! one wildcard is a prefix and a suffix test, and the full glob languages (character
//! classes, `**`, braces) mean nothing for method names.
//!
//! A route pattern names one plain HTTP route: `/healthz`, `/metrics`, or `/` (the demo's
//! files: every other plain path). `*` alone covers every route as well as every method; no
//! other method pattern covers a route.

use std::fmt;

use crate::protocol::web::PlainRoute;

/// What a request asks for: a call on the stack, or a plain HTTP route.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    /// A method path, `/package.Service/Method`.
    Call(&'a str),
    /// A plain HTTP route.
    Route(PlainRoute),
}

/// One parsed pattern of a key file.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Pattern {
    Method(MethodPattern),
    Route(PlainRoute),
}

impl Pattern {
    /// Parses a pattern; the error completes the sentence "method pattern X ...".
    pub(crate) fn parse(text: &str) -> Result<Self, &'static str> {
        let text = text.trim();
        if let Some(route) = PlainRoute::ALL.into_iter().find(|r| r.name() == text) {
            return Ok(Self::Route(route));
        }
        MethodPattern::parse(text).map(Self::Method).map_err(|why| {
            if text.strip_prefix('/').is_some_and(|rest| !rest.contains(['/', '*'])) {
                "names no HTTP route (there are `/healthz`, `/metrics` and `/`, the demo's files)"
            } else {
                why
            }
        })
    }

    /// Whether the pattern covers `target`.
    pub(crate) fn matches(&self, target: Target<'_>) -> bool {
        match (self, target) {
            (Self::Method(m), Target::Call(path)) => m.matches(path),
            (Self::Method(m), Target::Route(_)) => m.is_everything(),
            (Self::Route(r), Target::Route(route)) => *r == route,
            (Self::Route(_), Target::Call(_)) => false,
        }
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Method(m) => m.fmt(f),
            Self::Route(r) => f.write_str(r.name()),
        }
    }
}

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

    /// Whether this is `*`, which matches everything.
    fn is_everything(&self) -> bool {
        self.prefix == "/" && self.suffix.as_deref() == Some("")
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
        for bad in ["", "a*b*c", "no-slash", "/metric", "metrics", "/vendor"] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Pattern::parse("/metric").unwrap_err().contains("names no HTTP route"));
    }

    #[test]
    fn routes() {
        let p = |text: &str| Pattern::parse(text).unwrap();
        let (health, metrics, files) =
            (Target::Route(PlainRoute::Health), Target::Route(PlainRoute::Metrics), Target::Route(PlainRoute::Files));
        assert!(p("/metrics").matches(metrics));
        assert!(!p("/metrics").matches(health) && !p("/metrics").matches(files));
        assert!(p("/").matches(files) && !p("/").matches(metrics));
        assert!(p("/healthz").matches(health));
        assert!(!p("/metrics").matches(Target::Call("/metrics")), "a route pattern covers no call");
        for every in ["*", "/*"] {
            assert!([health, metrics, files].into_iter().all(|t| p(every).matches(t)), "{every}");
            assert!(p(every).matches(Target::Call("/a.S/M")));
        }
        for partial in ["grpc.health.v1.Health/*", "*/Get", "portway.*", "*s"] {
            assert!(![health, metrics, files].into_iter().any(|t| p(partial).matches(t)), "{partial}");
        }
    }
}
