//! What the descriptor-driven codec shares with the generated (pbjson) path, in one place:
//! the number reader, the bytes reader, the text writer, and the well-known types, whose
//! JSON forms are special and are written and read by the very impls the generated code
//! uses. Sharing them is what makes both paths print the same bytes.

use prost::Message as _;
use serde::de::{Deserialize, Deserializer};
use serde::ser::{self, Serialize, Serializer};

pub(super) use crate::protojson::{NumberDeserialize, to_writer};
pub(super) use pbjson::private::BytesDeserialize;

/// A message type whose JSON form is not the general object rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WellKnown {
    Any,
    Timestamp,
    Duration,
    Struct,
    Value,
    ListValue,
    FieldMask,
    Empty,
    DoubleValue,
    FloatValue,
    Int64Value,
    UInt64Value,
    Int32Value,
    UInt32Value,
    BoolValue,
    StringValue,
    BytesValue,
}

impl WellKnown {
    /// The well-known type named `full_name`, if it is one.
    pub(super) fn of(full_name: &str) -> Option<Self> {
        Some(match full_name.strip_prefix("google.protobuf.")? {
            "Any" => Self::Any,
            "Timestamp" => Self::Timestamp,
            "Duration" => Self::Duration,
            "Struct" => Self::Struct,
            "Value" => Self::Value,
            "ListValue" => Self::ListValue,
            "FieldMask" => Self::FieldMask,
            "Empty" => Self::Empty,
            "DoubleValue" => Self::DoubleValue,
            "FloatValue" => Self::FloatValue,
            "Int64Value" => Self::Int64Value,
            "UInt64Value" => Self::UInt64Value,
            "Int32Value" => Self::Int32Value,
            "UInt32Value" => Self::UInt32Value,
            "BoolValue" => Self::BoolValue,
            "StringValue" => Self::StringValue,
            "BytesValue" => Self::BytesValue,
            _ => return None,
        })
    }

    /// Whether JSON `null` is a value of this type (rather than "unset").
    pub(super) fn takes_null(self) -> bool {
        self == Self::Value
    }
}

/// Runs `$body` with `$t` bound to the generated Rust type of well-known type `$wkt`.
macro_rules! with_type {
    ($wkt:expr, $t:ident => $body:expr) => {
        match $wkt {
            WellKnown::Any => {
                type $t = crate::protojson::Any;
                $body
            }
            WellKnown::Timestamp => {
                type $t = crate::protojson::Timestamp;
                $body
            }
            WellKnown::Duration => {
                type $t = crate::protojson::Duration;
                $body
            }
            WellKnown::Struct => {
                type $t = crate::protojson::Struct;
                $body
            }
            WellKnown::Value => {
                type $t = crate::protojson::Value;
                $body
            }
            WellKnown::ListValue => {
                type $t = crate::protojson::ListValue;
                $body
            }
            WellKnown::FieldMask => {
                type $t = crate::protojson::FieldMask;
                $body
            }
            WellKnown::Empty => {
                type $t = pbjson_types::Empty;
                $body
            }
            WellKnown::DoubleValue => {
                type $t = crate::protojson::DoubleValue;
                $body
            }
            WellKnown::FloatValue => {
                type $t = crate::protojson::FloatValue;
                $body
            }
            WellKnown::Int64Value => {
                type $t = crate::protojson::Int64Value;
                $body
            }
            WellKnown::UInt64Value => {
                type $t = crate::protojson::UInt64Value;
                $body
            }
            WellKnown::Int32Value => {
                type $t = crate::protojson::Int32Value;
                $body
            }
            WellKnown::UInt32Value => {
                type $t = crate::protojson::UInt32Value;
                $body
            }
            WellKnown::BoolValue => {
                type $t = crate::protojson::BoolValue;
                $body
            }
            WellKnown::StringValue => {
                type $t = crate::protojson::StringValue;
                $body
            }
            WellKnown::BytesValue => {
                type $t = crate::protojson::BytesValue;
                $body
            }
        }
    };
}

/// Writes `binary`, a message of well-known type `wkt`, with the generated type's impl.
pub(super) fn serialize_well_known<S: Serializer>(
    wkt: WellKnown,
    binary: &[u8],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    with_type!(wkt, T => {
        let value = T::decode(binary).map_err(ser::Error::custom)?;
        value.serialize(serializer)
    })
}

/// Reads a message of well-known type `wkt` with the generated type's impl; returns its
/// binary encoding.
pub(super) fn deserialize_well_known<'de, D: Deserializer<'de>>(
    wkt: WellKnown,
    deserializer: D,
) -> Result<Vec<u8>, D::Error> {
    with_type!(wkt, T => Ok(T::deserialize(deserializer)?.encode_to_vec()))
}
