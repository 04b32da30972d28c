//! The wrapper types (`google.protobuf.Int32Value` …) and `google.protobuf.FieldMask`.
//!
//! A wrapper is written as the value it wraps. Hand-written (pbjson-types has them too) so
//! that their numbers follow the same rules as every numeric field ([`NumberDeserialize`]:
//! `1e2` for an integer, only the three special strings for floats), where pbjson-types'
//! refuse `1e2` and take `"inf"`. pbjson-types writes a FieldMask as `{"paths": [...]}`; the
//! mapping's form is one string of lowerCamelCase paths separated by commas.

use std::fmt;

use base64::Engine as _;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::NumberDeserialize;

macro_rules! wrapper {
    ($(#[$doc:meta] $name:ident($t:ty, $kind:ident, [$($derive:ident),*], $ser:expr, $de:expr);)*) => {$(
        #[$doc]
        // The derives prost-build gives the type (messages that hold one derive them too).
        #[derive(Clone, PartialEq, $($derive,)* ::prost::Message)]
        pub struct $name {
            /// The wrapped value.
            #[prost($kind, tag = "1")]
            pub value: $t,
        }

        impl From<$t> for $name {
            fn from(value: $t) -> Self {
                Self { value }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let write: fn(&$t, S) -> Result<S::Ok, S::Error> = $ser;
                write(&self.value, s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let read: fn(D) -> Result<$t, D::Error> = $de;
                read(d).map(|value| Self { value })
            }
        }
    )*};
}

fn number<'de, T: super::number::JsonNumber, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    NumberDeserialize::<T>::deserialize(d).map(|n| n.0)
}

wrapper! {
    /// `google.protobuf.DoubleValue`.
    DoubleValue(f64, double, [Copy], |v, s| s.serialize_f64(*v), number);
    /// `google.protobuf.FloatValue`.
    FloatValue(f32, float, [Copy], |v, s| s.serialize_f32(*v), number);
    /// `google.protobuf.Int64Value`: written as a string, like every 64-bit integer.
    Int64Value(i64, int64, [Copy, Eq, Hash], |v, s| s.collect_str(v), number);
    /// `google.protobuf.UInt64Value`: written as a string, like every 64-bit integer.
    UInt64Value(u64, uint64, [Copy, Eq, Hash], |v, s| s.collect_str(v), number);
    /// `google.protobuf.Int32Value`.
    Int32Value(i32, int32, [Copy, Eq, Hash], |v, s| s.serialize_i32(*v), number);
    /// `google.protobuf.UInt32Value`.
    UInt32Value(u32, uint32, [Copy, Eq, Hash], |v, s| s.serialize_u32(*v), number);
    /// `google.protobuf.BoolValue`.
    BoolValue(bool, bool, [Copy, Eq, Hash], |v, s| s.serialize_bool(*v), bool::deserialize);
    /// `google.protobuf.StringValue`.
    StringValue(String, string, [Eq, Hash], |v, s| s.serialize_str(v), String::deserialize);
    /// `google.protobuf.BytesValue`: written in standard base64 with padding; read in either alphabet.
    BytesValue(Vec<u8>, bytes, [Eq, Hash], |v, s| s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v)),
        |d| pbjson::private::BytesDeserialize::<Vec<u8>>::deserialize(d).map(|b| b.0));
}

/// `google.protobuf.FieldMask`: a set of field paths (`a.b_c`), written `"a.bC,d"`.
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct FieldMask {
    /// The paths, in proto field names (`snake_case`), segments separated by `.`.
    #[prost(string, repeated, tag = "1")]
    pub paths: Vec<String>,
}

/// `a_b.c_d` → `aB.cD`; refused where the way back would not give the same path (an
/// uppercase letter, `_` not before a lowercase letter), as the reference implementation.
fn to_camel(path: &str) -> Result<String, String> {
    let mut out = String::with_capacity(path.len());
    let mut upper_next = false;
    for c in path.chars() {
        if c.is_ascii_uppercase() {
            return Err(format!("the field mask path \"{path}\" has an uppercase letter"));
        }
        if upper_next {
            if !c.is_ascii_lowercase() {
                return Err(format!("the field mask path \"{path}\" has a \"_\" not before a lowercase letter"));
            }
            out.push(c.to_ascii_uppercase());
            upper_next = false;
        } else if c == '_' {
            upper_next = true;
        } else {
            out.push(c);
        }
    }
    if upper_next {
        return Err(format!("the field mask path \"{path}\" ends with \"_\""));
    }
    Ok(out)
}

/// `aB.cD` → `a_b.c_d`; a `_` is refused (it could not have been written).
fn to_snake(path: &str) -> Result<String, String> {
    let mut out = String::with_capacity(path.len() + 4);
    for c in path.chars() {
        if c == '_' {
            return Err(format!("the field mask path \"{path}\" has a \"_\": paths are written in lowerCamelCase"));
        }
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

impl Serialize for FieldMask {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let paths: Result<Vec<String>, String> = self.paths.iter().map(|p| to_camel(p)).collect();
        s.serialize_str(&paths.map_err(serde::ser::Error::custom)?.join(","))
    }
}

impl<'de> Deserialize<'de> for FieldMask {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FieldMask;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field mask string such as \"a.b,cD\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldMask, E> {
                if v.is_empty() {
                    return Ok(FieldMask::default());
                }
                let paths: Result<Vec<String>, String> = v.split(',').map(to_snake).collect();
                paths.map(|paths| FieldMask { paths }).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrappers_are_their_values() {
        assert_eq!(serde_json::to_string(&Int64Value::from(-5)).unwrap(), "\"-5\"");
        assert_eq!(serde_json::to_string(&UInt64Value::from(u64::MAX)).unwrap(), "\"18446744073709551615\"");
        assert_eq!(
            serde_json::to_string(&BytesValue::from(vec![0xde, 0xad, 0xbe, 0xef, 0xfb])).unwrap(),
            "\"3q2+7/s=\""
        );
        assert_eq!(serde_json::from_str::<BytesValue>("\"3q2-7_s\"").unwrap().value, [0xde, 0xad, 0xbe, 0xef, 0xfb]);
        assert!(serde_json::from_str::<BytesValue>("\"3q2+7/s=!\"").is_err());
        assert_eq!(serde_json::from_str::<Int32Value>("1e2").unwrap().value, 100);
        assert_eq!(serde_json::from_str::<Int64Value>("\"-9223372036854775808\"").unwrap().value, i64::MIN);
        assert!(serde_json::from_str::<Int32Value>("1.5").is_err());
        assert!(serde_json::from_str::<FloatValue>("\"inf\"").is_err());
        assert!(serde_json::from_str::<BoolValue>("1").is_err());
        assert!(serde_json::from_str::<StringValue>("1").is_err());
    }

    #[test]
    fn field_masks_are_one_camel_case_string() {
        let mask = FieldMask { paths: vec!["user.display_name".into(), "photo".into(), "a_b_c.d".into()] };
        let json = serde_json::to_string(&mask).unwrap();
        assert_eq!(json, "\"user.displayName,photo,aBC.d\"");
        assert_eq!(serde_json::from_str::<FieldMask>(&json).unwrap(), mask);
        assert_eq!(serde_json::from_str::<FieldMask>("\"\"").unwrap(), FieldMask::default());
        assert_eq!(serde_json::to_string(&FieldMask::default()).unwrap(), "\"\"");
        for bad in [vec!["Upper"], vec!["trailing_"], vec!["a__b"], vec!["a_1"]] {
            let mask = FieldMask { paths: bad.iter().map(|s| s.to_string()).collect() };
            assert!(serde_json::to_string(&mask).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<FieldMask>("\"a_b\"").is_err());
        assert!(serde_json::from_str::<FieldMask>("[\"a\"]").is_err());
    }
}
