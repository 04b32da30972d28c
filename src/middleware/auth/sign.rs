//! Signed calls: instead of sending its key, a call names it (`x-portway-key-id`) and proves
//! it holds it with an HMAC-SHA256 over the call's timestamp, method and body digest.
//!
//! ```text
//! secret         = SHA-256(api key)                                  (32 bytes)
//! string to sign = "PORTWAY-HMAC-SHA256\n" timestamp "\n" nonce "\n" path "\n" content
//! signature      = lower-case hex of HMAC-SHA256(secret, string to sign)
//! ```
//!
//! `timestamp` is `x-portway-timestamp` (Unix seconds), `nonce` is `x-portway-nonce` (1 to 64
//! printable characters the client picks anew for every call, so that two identical calls in
//! the same second have different signatures), `path` the call's
//! `/package.Service/Method`, `content` is `x-portway-content-sha256`: the lower-case hex
//! SHA-256 of the request's messages in protobuf binary encoding, concatenated (for a unary
//! call: its one message), or `UNSIGNED-PAYLOAD` for calls whose messages are not known in
//! advance (streams). A call outside the clock-skew window, or whose signature was already
//! used, is refused; a body that does not match its digest fails the call before the
//! service sees it. `docs/auth.md` has a worked example.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf as _, Bytes, BytesMut};
use hmac::{KeyInit as _, Mac as _};
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tonic::Status;

use super::keys::{ApiKey, Digest, KeySet};

/// The header that names the signing key.
pub const KEY_ID_HEADER: &str = "x-portway-key-id";
/// The header with the call's time, in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-portway-timestamp";
/// The header with the call's nonce.
pub const NONCE_HEADER: &str = "x-portway-nonce";
/// The header with the signature (hex).
pub const SIGNATURE_HEADER: &str = "x-portway-signature";
/// The header with the body digest (hex), or [`UNSIGNED_PAYLOAD`].
pub const CONTENT_HEADER: &str = "x-portway-content-sha256";
/// The body digest of a call whose body is not signed (streams).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

type HmacSha256 = hmac::Hmac<Sha256>;

/// The string a call signs (see the module docs).
pub fn string_to_sign(timestamp: &str, nonce: &str, path: &str, content: &str) -> String {
    format!("PORTWAY-HMAC-SHA256\n{timestamp}\n{nonce}\n{path}\n{content}")
}

/// Whether a call is signed (and so judged by its signature alone).
pub(crate) fn is_signed(headers: &HeaderMap) -> bool {
    headers.contains_key(SIGNATURE_HEADER)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, Status> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .ok_or_else(|| Status::unauthenticated(format!("a signed call needs the `{name}` header")))
}

/// Checks a signed call's headers; the key, and the digest its body must have (if signed).
pub(crate) fn verify<'k>(
    headers: &HeaderMap,
    path: &str,
    keys: &'k KeySet,
    replays: &ReplayCache,
    skew: Duration,
) -> Result<(&'k ApiKey, Option<SignedBody>), Status> {
    let key_id = header(headers, KEY_ID_HEADER)?;
    let timestamp = header(headers, TIMESTAMP_HEADER)?;
    let nonce = header(headers, NONCE_HEADER)?;
    if nonce.is_empty() || nonce.len() > 64 {
        return Err(Status::unauthenticated(format!("`{NONCE_HEADER}` must have 1 to 64 characters")));
    }
    let content = header(headers, CONTENT_HEADER)?;
    let signature = header(headers, SIGNATURE_HEADER)?;
    let key = keys.by_id(key_id).ok_or_else(|| Status::unauthenticated("the signed call names no known key"))?;
    let at: i64 =
        timestamp.parse().map_err(|_| Status::unauthenticated(format!("`{TIMESTAMP_HEADER}` must be Unix seconds")))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let off = now.abs_diff(at);
    if off > skew.as_secs() {
        return Err(Status::unauthenticated(format!(
            "the signature has expired: its timestamp is {off} s from the gateway's clock (at most {} s allowed)",
            skew.as_secs()
        )));
    }
    let body = if content == UNSIGNED_PAYLOAD {
        None
    } else {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(content, &mut digest).map_err(|_| {
            Status::unauthenticated(format!("`{CONTENT_HEADER}` must be 64 hex digits or {UNSIGNED_PAYLOAD}"))
        })?;
        Some(SignedBody { digest })
    };
    let mut claimed = [0u8; 32];
    hex::decode_to_slice(signature, &mut claimed)
        .map_err(|_| Status::unauthenticated(format!("`{SIGNATURE_HEADER}` must be 64 hex digits")))?;
    let mut mac = HmacSha256::new_from_slice(key.signing_secret()).map_err(|_| Status::internal("HMAC key"))?;
    mac.update(string_to_sign(timestamp, nonce, path, content).as_bytes());
    // `verify_slice` compares in constant time.
    mac.verify_slice(&claimed).map_err(|_| Status::unauthenticated("the signature is not valid"))?;
    replays.first_use(claimed)?;
    Ok((key, body))
}

/// Signatures seen in the last `ttl`, to refuse replays. Bounded: when full of live
/// entries, signed calls are refused until some expire.
pub(crate) struct ReplayCache {
    capacity: usize,
    ttl: Duration,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    at: HashMap<Digest, Instant>,
    order: VecDeque<(Instant, Digest)>,
}

impl ReplayCache {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self { capacity: capacity.max(1), ttl, seen: Mutex::new(Seen::default()) }
    }

    /// Records `signature`; an error if it was seen before, or if the cache is full.
    pub(crate) fn first_use(&self, signature: Digest) -> Result<(), Status> {
        let now = Instant::now();
        let mut seen = self.seen.lock().map_err(|_| Status::internal("replay cache poisoned"))?;
        while let Some((at, sig)) = seen.order.front().copied() {
            if now.duration_since(at) < self.ttl {
                break;
            }
            seen.order.pop_front();
            seen.at.remove(&sig);
        }
        if seen.at.contains_key(&signature) {
            return Err(Status::unauthenticated("the signature was already used (a replayed call)"));
        }
        if seen.at.len() >= self.capacity {
            return Err(Status::resource_exhausted("too many signed calls at once; retry later"));
        }
        seen.at.insert(signature, now);
        seen.order.push_back((now, signature));
        Ok(())
    }
}

/// The body digest a signed call promised.
pub(crate) struct SignedBody {
    digest: Digest,
}

impl SignedBody {
    /// `body`, held until it has ended and its messages match the digest (at most `limit`
    /// bytes); a mismatch fails the body with `UNAUTHENTICATED`.
    pub(crate) fn wrap<B>(self, body: B, limit: usize) -> Checked<B> {
        Checked { inner: body, expected: self.digest, limit, held: BytesMut::new(), state: State::Reading }
    }
}

enum State {
    Reading,
    /// Checked: the body, then the trailers (if any), then the end.
    Release(Option<Bytes>, Option<HeaderMap>),
    Done,
}

pin_project! {
    /// A request body checked against its signed digest (see [`SignedBody::wrap`]).
    pub(crate) struct Checked<B> {
        #[pin]
        inner: B,
        expected: Digest,
        limit: usize,
        held: BytesMut,
        state: State,
    }
}

/// SHA-256 over the payloads of the gRPC messages in `framed`; `None` if it is not a whole
/// number of messages.
fn messages_digest(mut framed: &[u8]) -> Option<Digest> {
    let mut hasher = Sha256::new();
    while !framed.is_empty() {
        if framed.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes([framed[1], framed[2], framed[3], framed[4]]) as usize;
        framed.advance(5);
        hasher.update(framed.get(..len)?);
        framed.advance(len);
    }
    Some(hasher.finalize().into())
}

impl<B> http_body::Body for Checked<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<tower::BoxError>,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let mut this = self.project();
        loop {
            match this.state {
                State::Reading => {
                    let trailers = match ready!(this.inner.as_mut().poll_frame(cx)) {
                        Some(Ok(frame)) => match frame.into_data() {
                            Ok(data) => {
                                if this.held.len() + data.len() > *this.limit {
                                    *this.state = State::Done;
                                    return Poll::Ready(Some(Err(Status::resource_exhausted(format!(
                                        "a signed request body may have at most {} bytes",
                                        this.limit
                                    )))));
                                }
                                this.held.extend_from_slice(&data);
                                continue;
                            }
                            Err(frame) => frame.into_trailers().ok(),
                        },
                        Some(Err(e)) => {
                            *this.state = State::Done;
                            return Poll::Ready(Some(Err(Status::from_error(e.into()))));
                        }
                        None => None,
                    };
                    let held = std::mem::take(this.held).freeze();
                    let ok = messages_digest(&held).is_some_and(|d| bool::from(d.ct_eq(this.expected)));
                    if !ok {
                        *this.state = State::Done;
                        return Poll::Ready(Some(Err(Status::unauthenticated(
                            "the request's messages do not match the signed digest",
                        ))));
                    }
                    *this.state = State::Release((!held.is_empty()).then_some(held), trailers);
                }
                State::Release(data, trailers) => {
                    if let Some(data) = data.take() {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    let trailers = trailers.take();
                    *this.state = State::Done;
                    if let Some(t) = trailers {
                        return Poll::Ready(Some(Ok(Frame::trailers(t))));
                    }
                }
                State::Done => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            // Not over until the digest is checked, even for an empty body: the check must run.
            State::Reading => false,
            State::Release(data, trailers) => data.is_none() && trailers.is_none(),
            State::Done => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Reading => {
                let inner = self.inner.size_hint();
                let held = self.held.len() as u64;
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + held);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + held);
                }
                hint
            }
            State::Release(data, _) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            State::Done => SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_and_capacity() {
        let cache = ReplayCache::new(2, Duration::from_secs(60));
        cache.first_use([1; 32]).unwrap();
        assert_eq!(cache.first_use([1; 32]).unwrap_err().code(), tonic::Code::Unauthenticated);
        cache.first_use([2; 32]).unwrap();
        assert_eq!(cache.first_use([3; 32]).unwrap_err().code(), tonic::Code::ResourceExhausted);
        let expiring = ReplayCache::new(1, Duration::ZERO);
        expiring.first_use([1; 32]).unwrap();
        expiring.first_use([2; 32]).unwrap();
    }

    /// The worked example of docs/auth.md (computed there with `openssl dgst`).
    #[test]
    fn the_documented_example() {
        let secret = crate::middleware::auth::keys::sha256(b"interop-signer-key");
        let mut mac = HmacSha256::new_from_slice(&secret).unwrap();
        let text = string_to_sign("1700000000", "n-1", "/grpc.testing.TestService/UnaryCall", UNSIGNED_PAYLOAD);
        mac.update(text.as_bytes());
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "77688586038e23d20b4445b69bc61d7f95eb67e96c12759b26b56e0f65c369a8"
        );
    }

    #[test]
    fn digest_of_messages() {
        let framed = [0u8, 0, 0, 0, 2, b'h', b'i', 0, 0, 0, 0, 1, b'!'];
        assert_eq!(messages_digest(&framed), Some(Sha256::digest(b"hi!").into()));
        assert_eq!(messages_digest(&framed[..4]), None);
        assert_eq!(messages_digest(&framed[..6]), None);
        assert_eq!(messages_digest(&[]), Some(Sha256::digest(b"").into()));
    }
}
