//! Enum fields as the canonical mapping has them: a known value by its name, any other
//! number (proto3 enums are open: a newer peer may send values this build does not know) as
//! the number itself, both when writing and when reading.
//!
//! pbjson's generated code converts a field's `i32` to the Rust enum and fails the whole
//! message on an unknown number (`Invalid variant 7`), and reads only known numbers. `build.rs`
//! points the generated code at [`OpenEnum`] instead, which keeps the `i32`.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, Unexpected, Visitor};
use serde::{Serialize, Serializer};

/// The value of an enum field of type `E`: its number, known to `E` or not.
pub struct OpenEnum<E>(pub i32, PhantomData<fn() -> E>);

impl<E> OpenEnum<E> {
    /// The field value `number`.
    pub const fn new(number: i32) -> Self {
        Self(number, PhantomData)
    }
}

/// Every number is a value of an open enum. (Generated code calls `try_from`, which this
/// gives an error branch that cannot be taken.)
impl<E> From<i32> for OpenEnum<E> {
    fn from(number: i32) -> Self {
        Self::new(number)
    }
}

impl<E> Serialize for OpenEnum<E>
where
    E: TryFrom<i32> + Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match E::try_from(self.0) {
            Ok(known) => known.serialize(serializer),
            Err(_) => serializer.serialize_i32(self.0),
        }
    }
}

impl<'de, E> Deserialize<'de> for OpenEnum<E>
where
    E: Deserialize<'de> + Into<i32>,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<E>(PhantomData<fn() -> E>);

        impl<'de, E> Visitor<'de> for V<E>
        where
            E: Deserialize<'de> + Into<i32>,
        {
            type Value = OpenEnum<E>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an enum value's name or number ({})", short_name::<E>())
            }

            fn visit_str<Er: de::Error>(self, v: &str) -> Result<Self::Value, Er> {
                let known = E::deserialize(v.into_deserializer())?;
                Ok(OpenEnum::new(known.into()))
            }

            fn visit_i64<Er: de::Error>(self, v: i64) -> Result<Self::Value, Er> {
                i32::try_from(v).map(OpenEnum::new).map_err(|_| Er::invalid_value(Unexpected::Signed(v), &self))
            }

            fn visit_u64<Er: de::Error>(self, v: u64) -> Result<Self::Value, Er> {
                i32::try_from(v).map(OpenEnum::new).map_err(|_| Er::invalid_value(Unexpected::Unsigned(v), &self))
            }

            fn visit_f64<Er: de::Error>(self, v: f64) -> Result<Self::Value, Er> {
                // `1.0` or `1e0` is the number 1, as for integer fields.
                let in_range = v.fract() == 0.0 && v >= f64::from(i32::MIN) && v <= f64::from(i32::MAX);
                in_range.then(|| OpenEnum::new(v as i32)).ok_or_else(|| Er::invalid_value(Unexpected::Float(v), &self))
            }

            fn visit_unit<Er: de::Error>(self) -> Result<Self::Value, Er> {
                // `null` is a value only of `google.protobuf.NullValue` (its impl takes it).
                // Generated code reads a field through `NullOr`, so only a list element gets
                // here, where `null` is an error for every other enum.
                let known = E::deserialize(().into_deserializer())?;
                Ok(OpenEnum::new(known.into()))
            }
        }

        deserializer.deserialize_any(V(PhantomData))
    }
}

fn short_name<E>() -> &'static str {
    let name = std::any::type_name::<E>();
    name.rsplit("::").next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protojson::NullValue;

    /// A stand-in for a generated enum, with the same kind of serde impls.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Color {
        Unspecified = 0,
        Red = 1,
    }

    impl TryFrom<i32> for Color {
        type Error = ();
        fn try_from(v: i32) -> Result<Self, ()> {
            match v {
                0 => Ok(Self::Unspecified),
                1 => Ok(Self::Red),
                _ => Err(()),
            }
        }
    }

    impl From<Color> for i32 {
        fn from(c: Color) -> i32 {
            c as i32
        }
    }

    impl Serialize for Color {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(match self {
                Self::Unspecified => "COLOR_UNSPECIFIED",
                Self::Red => "COLOR_RED",
            })
        }
    }

    impl<'de> Deserialize<'de> for Color {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            match String::deserialize(d)?.as_str() {
                "COLOR_UNSPECIFIED" => Ok(Self::Unspecified),
                "COLOR_RED" => Ok(Self::Red),
                other => Err(de::Error::unknown_variant(other, &["COLOR_UNSPECIFIED", "COLOR_RED"])),
            }
        }
    }

    fn write(n: i32) -> String {
        serde_json::to_string(&OpenEnum::<Color>::new(n)).unwrap()
    }

    fn read(json: &str) -> Result<i32, String> {
        serde_json::from_str::<OpenEnum<Color>>(json).map(|e| e.0).map_err(|e| e.to_string())
    }

    #[test]
    fn known_values_by_name_unknown_by_number() {
        assert_eq!(write(1), "\"COLOR_RED\"");
        assert_eq!(write(0), "\"COLOR_UNSPECIFIED\"");
        assert_eq!(write(7), "7");
        assert_eq!(write(-2), "-2");
    }

    #[test]
    fn reads_names_and_any_number() {
        assert_eq!(read("\"COLOR_RED\""), Ok(1));
        assert_eq!(read("1"), Ok(1));
        assert_eq!(read("7"), Ok(7));
        assert_eq!(read("-2147483648"), Ok(i32::MIN));
        assert_eq!(read("2e0"), Ok(2));
        assert!(read("\"COLOR_BLUE\"").unwrap_err().contains("unknown variant"));
        for json in ["2147483648", "1.5", "true", "null", "[]", "{}", "\"1\""] {
            assert!(read(json).is_err(), "{json}");
        }
        // `null` is the one value of NullValue.
        assert_eq!(serde_json::from_str::<OpenEnum<NullValue>>("null").map(|e| e.0).ok(), Some(0));
    }
}
