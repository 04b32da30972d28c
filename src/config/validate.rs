//! Settings that cannot work, refused before the gateway starts: each error is a sentence
//! that names the setting (its `portway` flag in brackets), what is wrong and what would work.

use super::{AllowedOrigins, Config};

/// The largest WebSocket read or write buffer accepted (each socket has one of each).
pub const MAX_WS_BUFFER_BYTES: usize = 64 << 20;

/// Why a [`Config`] cannot work. The message is meant for the person who wrote the setting.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidConfig(String);

impl Config {
    /// Checks the settings that no run could work with: a zero message or connection limit,
    /// a WebSocket path that is not a path, a web root that is not a directory, an allowed
    /// origin that is not an origin, a WebSocket frame limit below its message limit, a
    /// WebSocket buffer over [`MAX_WS_BUFFER_BYTES`].
    /// `Gateway::builder(..).build()` does not call this; the `portway` binary does, before
    /// it binds, so that a bad value is refused at start instead of failing each request.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let fail = |m: String| Err(InvalidConfig(m));
        if self.max_message_bytes == 0 {
            return fail(
                "the message limit (--max-message-bytes) is 0, so no message could pass; give at least 1 (the \
                 default is 4194304, 4 MiB)"
                    .into(),
            );
        }
        if self.http.max_connections == 0 {
            return fail(
                "the connection limit (--max-connections) is 0, so no client could connect; give at least 1".into(),
            );
        }
        if self.http.max_connections_per_address == 0 {
            return fail(
                "the per-address connection limit (--max-connections-per-address) is 0, so no client could connect; \
                 give at least 1"
                    .into(),
            );
        }
        self.validate_websocket()?;
        if let Some(root) = &self.web_root {
            match std::fs::metadata(root) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return fail(format!("the web root (--web-dir) {} is a file, not a directory", root.display()));
                }
                Err(e) => {
                    return fail(format!(
                        "the web root (--web-dir) {} cannot be read ({}); give an existing directory, or leave it out \
                         to serve the embedded demo",
                        root.display(),
                        describe_io(&e)
                    ));
                }
            }
        }
        if let AllowedOrigins::List(origins) = &self.cors.allowed_origins {
            for origin in origins {
                let text = String::from_utf8_lossy(origin.as_bytes());
                if let Err(why) = check_origin(&text) {
                    return fail(format!(
                        "the allowed origin (--cors-origin) `{text}` is not an origin: {why}; an origin is a scheme, a \
                         host and an optional port, such as https://app.example.com or http://localhost:3000"
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_websocket(&self) -> Result<(), InvalidConfig> {
        let ws = &self.websocket;
        if !ws.path.starts_with('/') || ws.path.contains(['?', '#', ' ']) {
            return Err(InvalidConfig(format!(
                "the WebSocket path (--ws-path) `{}` is not a path: it must start with `/` and hold no `?`, `#` or \
                 space, such as /ws",
                ws.path
            )));
        }
        if ws.max_message_bytes == Some(0) {
            return Err(InvalidConfig(
                "the WebSocket message limit (--ws-max-message-bytes) is 0, so no message could pass; give at least \
                 1, or leave it out to use --max-message-bytes"
                    .into(),
            ));
        }
        let message = ws.max_message_bytes.unwrap_or(self.max_message_bytes);
        if let Some(frame) = ws.max_frame_bytes
            && frame < message
        {
            return Err(InvalidConfig(format!(
                "the WebSocket frame limit (--ws-max-frame-bytes) {frame} is below the WebSocket message limit \
                 {message}, so a message at the limit could never arrive; give at least {message}, or leave it out \
                 (the WebSocket JSON text limit plus 64 KiB)"
            )));
        }
        for (flag, what, bytes) in [
            ("--ws-read-buffer-bytes", "read buffer", ws.read_buffer_bytes),
            ("--ws-write-buffer-bytes", "write buffer", ws.write_buffer_bytes),
        ] {
            // tungstenite allocates the read buffer for every socket (too large a one aborts
            // the process at the first WebSocket) and panics on a write buffer of `usize::MAX`.
            if bytes > MAX_WS_BUFFER_BYTES {
                return Err(InvalidConfig(format!(
                    "the WebSocket {what} ({flag}) {bytes} is over 64 MiB ({MAX_WS_BUFFER_BYTES}); every socket \
                     has one, so give at most that (the default is 8192)"
                )));
            }
        }
        if ws.max_calls_per_socket == 0 {
            return Err(InvalidConfig(
                "the WebSocket call limit (--ws-max-calls) is 0, so no call could be opened; give at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Checks `text` is an origin as browsers send it (RFC 6454): `scheme://host[:port]`, no path,
/// query, fragment or user info.
fn check_origin(text: &str) -> Result<(), &'static str> {
    let uri: http::Uri = text.parse().map_err(|_| "it cannot be read as a URL")?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err("it has no scheme and host");
    };
    if !matches!(scheme, "http" | "https") && !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
        return Err("its scheme is not a scheme");
    }
    if authority.as_str().contains('@') {
        return Err("it holds user information");
    }
    if authority.host().is_empty() {
        return Err("it has no host");
    }
    // `http::Uri` reads "https://a.example" with path "/" and "https://a.example/" the same
    // way, so the text itself tells whether a path was given.
    let after_scheme = &text[scheme.len() + 3..];
    if after_scheme.contains(['/', '?', '#']) {
        return Err("it has a path, a query or a fragment (an origin ends after the host or port; no trailing `/`)");
    }
    Ok(())
}

fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "it does not exist".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)] // Config is non_exhaustive: no struct literal
mod tests {
    use super::*;
    use http::HeaderValue;

    fn refused(config: &Config) -> String {
        match config.validate() {
            Ok(()) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn impossible_values_are_refused_with_their_flag() {
        let mut c = Config::default();
        c.max_message_bytes = 0;
        assert!(refused(&c).contains("--max-message-bytes) is 0"));

        let mut c = Config::default();
        c.http.max_connections = 0;
        assert!(refused(&c).contains("--max-connections) is 0"));

        let mut c = Config::default();
        c.websocket.path = "ws".into();
        assert!(refused(&c).contains("`ws` is not a path"));

        let mut c = Config::default();
        c.websocket.max_frame_bytes = Some(1024);
        assert!(refused(&c).contains("--ws-max-frame-bytes) 1024 is below"));

        let mut c = Config::default();
        c.websocket.read_buffer_bytes = 1 << 40;
        assert!(refused(&c).contains("read buffer (--ws-read-buffer-bytes) 1099511627776 is over 64 MiB"));

        let mut c = Config::default();
        c.websocket.write_buffer_bytes = usize::MAX;
        assert!(refused(&c).contains("write buffer (--ws-write-buffer-bytes)"));

        let mut c = Config::default();
        c.websocket.read_buffer_bytes = MAX_WS_BUFFER_BYTES;
        c.websocket.write_buffer_bytes = 0;
        assert!(c.validate().is_ok(), "64 MiB and 0 are within the bounds");

        let mut c = Config::default();
        c.web_root = Some("/nonexistent/portway-web".into());
        assert!(refused(&c).contains("/nonexistent/portway-web cannot be read (it does not exist)"));
    }

    #[test]
    fn origins_are_checked() {
        for good in ["https://app.example.com", "http://localhost:3000", "http://[::1]:8080"] {
            let mut c = Config::default();
            c.cors.allowed_origins = AllowedOrigins::List(vec![HeaderValue::from_static(good)]);
            assert!(c.validate().is_ok(), "{good}");
        }
        for bad in ["app.example.com", "https://app.example.com/", "https://a.example/x", "https://u@a.example", "*"] {
            let mut c = Config::default();
            c.cors.allowed_origins = AllowedOrigins::List(vec![HeaderValue::from_str(bad).unwrap()]);
            assert!(refused(&c).contains("is not an origin"), "{bad}");
        }
    }
}
