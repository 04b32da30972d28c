//! The close codes a session sends, and which read error closes with which.

use axum::extract::ws::{CloseFrame, Utf8Bytes, close_code};

/// A frame over the frame limit: it cannot be skipped, so the socket closes (RFC 6455 1009).
pub const TOO_BIG: u16 = close_code::SIZE;
/// A text frame that is not valid UTF-8 (RFC 6455 1007).
pub const INVALID_UTF8: u16 = close_code::INVALID;
/// A WebSocket protocol violation (RFC 6455 1002).
pub const PROTOCOL_ERROR: u16 = close_code::PROTOCOL;
/// Nothing arrived for the idle timeout (a private-use code, `portway.v1.json`'s own).
pub const IDLE: u16 = 4000;

/// The longest close reason a close frame can carry (125 bytes of payload, 2 for the code).
const MAX_REASON: usize = 123;

/// The close frame for a read error, when the socket can still carry one.
pub(super) fn for_read_error(error: axum::BoxError) -> Option<CloseFrame> {
    // axum wraps the codec's error; look through both layers.
    let inner: axum::BoxError = match error.downcast::<axum::Error>() {
        Ok(e) => e.into_inner(),
        Err(e) => e,
    };
    let Some(e) = inner.downcast_ref::<tungstenite::Error>() else {
        tracing::debug!(error = %inner, "WebSocket read failed");
        return None;
    };
    let (code, reason) = match e {
        tungstenite::Error::Capacity(c) => (TOO_BIG, c.to_string()),
        tungstenite::Error::Utf8(_) => (INVALID_UTF8, "text frame is not valid UTF-8".to_string()),
        tungstenite::Error::Protocol(p) => (PROTOCOL_ERROR, p.to_string()),
        other => {
            tracing::debug!(error = %other, "WebSocket read failed");
            return None;
        }
    };
    tracing::debug!(code, %reason, "closing a WebSocket after a read error");
    Some(CloseFrame { code, reason: Utf8Bytes::from(truncate(reason)) })
}

/// `reason` cut to [`MAX_REASON`] bytes, on a character boundary.
fn truncate(mut reason: String) -> String {
    if reason.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_fit_a_close_frame() {
        assert_eq!(truncate("short".into()), "short");
        let long = "é".repeat(100);
        let cut = truncate(long);
        assert!(cut.len() <= MAX_REASON && cut.chars().all(|c| c == 'é'), "{cut}");
        let capacity =
            tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong { size: 10, max_size: 5 });
        assert_eq!(for_read_error(Box::new(capacity)).map(|c| c.code), Some(TOO_BIG));
        let io = std::io::Error::other("reset");
        assert!(for_read_error(Box::new(io)).is_none());
    }
}
