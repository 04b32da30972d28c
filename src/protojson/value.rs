//! `google.protobuf.Struct`, `Value`, `ListValue` and `NullValue`: any JSON document.
//!
//! Hand-written in place of pbjson-types' (whose API this keeps: `Value { kind }`,
//! `value::Kind`, the same `From` conversions) for three reasons: its `Struct` keeps fields
//! in a `HashMap`, so an object came back with its keys in a different order on every read;
//! it refuses integers beyond 2^53 where every other implementation reads the nearest
//! double; and it takes duplicate keys silently. Here `Struct` is a `BTreeMap` (objects are
//! written with their keys sorted, the same bytes every time) and a repeated key is an error.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{self, SerializeMap};
use serde::{Deserialize, Serialize, Serializer};

/// A JSON object.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Struct {
    /// The object's members, in key order.
    #[prost(btree_map = "string, message", tag = "1")]
    pub fields: BTreeMap<String, Value>,
}

/// Any JSON value. An unset `kind` is written as `null`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Value {
    /// Which kind of value, and the value.
    #[prost(oneof = "Kind", tags = "1, 2, 3, 4, 5, 6")]
    pub kind: Option<Kind>,
}

/// The kinds of JSON value.
#[derive(Clone, PartialEq, ::prost::Oneof)]
pub enum Kind {
    /// `null`.
    #[prost(enumeration = "NullValue", tag = "1")]
    NullValue(i32),
    /// A number (finite: JSON has no NaN or infinity).
    #[prost(double, tag = "2")]
    NumberValue(f64),
    /// A string.
    #[prost(string, tag = "3")]
    StringValue(String),
    /// `true` or `false`.
    #[prost(bool, tag = "4")]
    BoolValue(bool),
    /// An object.
    #[prost(message, tag = "5")]
    StructValue(Struct),
    /// An array.
    #[prost(message, tag = "6")]
    ListValue(ListValue),
}

/// A JSON array.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ListValue {
    /// The elements.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<Value>,
}

/// The one value of `google.protobuf.NullValue`, written `null`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum NullValue {
    /// `null`.
    NullValue = 0,
}

/// A field of type `google.protobuf.NullValue`, as generated code reads and writes it:
/// always written `null`, whatever number it holds (an [`OpenEnum`](super::OpenEnum) would
/// write an unknown number as the number); read from `null`, `"NULL_VALUE"` or any number,
/// which is kept (the enum is open), as the reference implementation does.
pub struct NullField(pub i32);

impl From<i32> for NullField {
    fn from(number: i32) -> Self {
        Self(number)
    }
}

impl Serialize for NullField {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for NullField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        super::OpenEnum::<NullValue>::deserialize(d).map(|n| Self(n.0))
    }
}

macro_rules! kind_from {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {$(
        impl From<$t> for Kind {
            fn from($v: $t) -> Self {
                $e
            }
        }
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Self { kind: Some(Kind::from(v)) }
            }
        }
    )*};
}
kind_from! {
    () => |_v| Kind::NullValue(0),
    f64 => |v| Kind::NumberValue(v),
    bool => |v| Kind::BoolValue(v),
    String => |v| Kind::StringValue(v),
    &str => |v| Kind::StringValue(v.to_owned()),
    Struct => |v| Kind::StructValue(v),
    ListValue => |v| Kind::ListValue(v),
    Vec<Value> => |v| Kind::ListValue(ListValue { values: v }),
    BTreeMap<String, Value> => |v| Kind::StructValue(Struct { fields: v }),
    HashMap<String, Value> => |v| Kind::StructValue(v.into_iter().collect()),
}

impl From<Kind> for Value {
    fn from(kind: Kind) -> Self {
        Self { kind: Some(kind) }
    }
}

impl From<Option<Kind>> for Value {
    fn from(kind: Option<Kind>) -> Self {
        Self { kind }
    }
}

impl From<BTreeMap<String, Value>> for Struct {
    fn from(fields: BTreeMap<String, Value>) -> Self {
        Self { fields }
    }
}

impl FromIterator<(String, Value)> for Struct {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Self { fields: iter.into_iter().collect() }
    }
}

impl From<Vec<Value>> for ListValue {
    fn from(values: Vec<Value>) -> Self {
        Self { values }
    }
}

impl FromIterator<Value> for ListValue {
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> Self {
        Self { values: iter.into_iter().collect() }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.kind {
            None | Some(Kind::NullValue(_)) => s.serialize_unit(),
            Some(Kind::NumberValue(n)) if !n.is_finite() => {
                // As the reference implementation: "NaN" would read back as a string.
                Err(ser::Error::custom(format!("a google.protobuf.Value cannot hold {n} in JSON")))
            }
            Some(Kind::NumberValue(n)) => s.serialize_f64(*n),
            Some(Kind::StringValue(v)) => s.serialize_str(v),
            Some(Kind::BoolValue(v)) => s.serialize_bool(*v),
            Some(Kind::StructValue(v)) => v.serialize(s),
            Some(Kind::ListValue(v)) => v.serialize(s),
        }
    }
}

impl Serialize for Struct {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.fields.len()))?;
        for (k, v) in &self.fields {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Serialize for ListValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(&self.values)
    }
}

impl Serialize for NullValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

/// Reads any JSON value.
struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Kind, E> {
        Ok(Kind::BoolValue(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Kind, E> {
        // The nearest double, as JSON parsers everywhere read a large integer.
        Ok(Kind::NumberValue(v as f64))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Kind, E> {
        Ok(Kind::NumberValue(v as f64))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Kind, E> {
        Ok(Kind::NumberValue(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Kind, E> {
        Ok(Kind::StringValue(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Kind, E> {
        Ok(Kind::StringValue(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::NullValue(0))
    }

    fn visit_none<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::NullValue(0))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Kind, A::Error> {
        ListVisitor.visit_seq(seq).map(Kind::ListValue)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Kind, A::Error> {
        StructVisitor.visit_map(map).map(Kind::StructValue)
    }
}

struct StructVisitor;

impl<'de> Visitor<'de> for StructVisitor {
    type Value = Struct;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Struct, A::Error> {
        let mut fields = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            match fields.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(map.next_value::<Value>()?);
                }
                Entry::Occupied(slot) => {
                    let key = slot.key();
                    return Err(de::Error::custom(format!("the key \"{key}\" appears twice in one object")));
                }
            }
        }
        Ok(Struct { fields })
    }
}

struct ListVisitor;

impl<'de> Visitor<'de> for ListVisitor {
    type Value = ListValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ListValue, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element::<Value>()? {
            values.push(v);
        }
        Ok(ListValue { values })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KindVisitor).map(Value::from)
    }
}

impl<'de> Deserialize<'de> for Struct {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(StructVisitor)
    }
}

impl<'de> Deserialize<'de> for ListValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(ListVisitor)
    }
}

impl<'de> Deserialize<'de> for NullValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NullValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("null")
            }
            fn visit_unit<E: de::Error>(self) -> Result<NullValue, E> {
                Ok(NullValue::NullValue)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NullValue, E> {
                match v {
                    "NULL_VALUE" => Ok(NullValue::NullValue),
                    _ => Err(E::unknown_variant(v, &["NULL_VALUE"])),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NullValue, E> {
                match v {
                    0 => Ok(NullValue::NullValue),
                    _ => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NullValue, E> {
                match v {
                    0 => Ok(NullValue::NullValue),
                    _ => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_written_in_key_order_every_time() {
        let json = r#"{"d":4,"b":2,"a":1,"c":{"z":null,"y":[true,"s",1.5]}}"#;
        let v: Value = serde_json::from_str(json).unwrap();
        let once = serde_json::to_string(&v).unwrap();
        assert_eq!(once, r#"{"a":1.0,"b":2.0,"c":{"y":[true,"s",1.5],"z":null},"d":4.0}"#);
        for _ in 0..5 {
            let again: Value = serde_json::from_str(&once).unwrap();
            assert_eq!(serde_json::to_string(&again).unwrap(), once);
        }
    }

    #[test]
    fn reads_what_json_can_hold() {
        let v: Value = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(v, Value::from(18_446_744_073_709_551_615.0));
        let v: Value = serde_json::from_str("-9007199254740993").unwrap();
        assert_eq!(v, Value::from(-9_007_199_254_740_992.0));
        assert_eq!(serde_json::from_str::<Value>("null").unwrap(), Value::from(()));
        let err = serde_json::from_str::<Value>(r#"{"a":1,"a":2}"#).unwrap_err().to_string();
        assert!(err.contains("appears twice"), "{err}");
        assert!(serde_json::from_str::<Struct>("[]").is_err());
        assert!(serde_json::from_str::<ListValue>("{}").is_err());
        assert!(serde_json::to_string(&Value::from(f64::NAN)).is_err());
        assert!(serde_json::to_string(&Value::from(f64::NEG_INFINITY)).is_err());
        assert_eq!(serde_json::to_string(&Value::default()).unwrap(), "null");
    }
}
