//! The frames of `portway.v1.json`: [`client`] parses what a client sends into a typed
//! [`ClientFrame`], [`server`] writes what the server sends. Messages stay raw JSON on the
//! way in (`&RawValue`, borrowed from the frame text, so each message is parsed once, by its
//! codec) and are spliced in as-is on the way out.

pub(crate) mod client;
pub(crate) mod server;

pub(crate) use client::{ClientFrame, Metadata, Open, ParseError, canonical_message};
pub(crate) use server::Reason;

/// The subprotocol this module speaks.
pub(crate) const SUBPROTOCOL: &str = "portway.v1.json";
/// A subprotocol that carries a bearer token instead of naming a protocol.
pub(crate) const BEARER_PREFIX: &str = "portway.bearer.";
