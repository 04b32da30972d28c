//! The close codes a session sends, and which read error closes with which.

use axum::extract::ws::{CloseFrame, Utf8Bytes, close_code};
use tungstenite::error::CapacityError;

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
        // tungstenite reads a 64-bit length whole and reports it as too long, but RFC 6455
        // (5.2) says its most significant bit MUST be 0: such a frame is malformed, not large.
        tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, .. }) if *size as u64 > i64::MAX as u64 => {
            (PROTOCOL_ERROR, "the frame's 64-bit length has its most significant bit set".to_string())
        }
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
        let too_long = |size| tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, max_size: 5 });
        assert_eq!(for_read_error(Box::new(too_long(10))).map(|c| c.code), Some(TOO_BIG));
        assert_eq!(for_read_error(Box::new(too_long(i64::MAX as usize))).map(|c| c.code), Some(TOO_BIG));
        // A length with its top bit set is a protocol error (RFC 6455, 5.2), not a large frame.
        assert_eq!(for_read_error(Box::new(too_long(1 << 63))).map(|c| c.code), Some(PROTOCOL_ERROR));
        assert_eq!(for_read_error(Box::new(too_long(usize::MAX))).map(|c| c.code), Some(PROTOCOL_ERROR));
        let io = std::io::Error::other("reset");
        assert!(for_read_error(Box::new(io)).is_none());
    }
}
