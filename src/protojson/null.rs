//! `null` as a field's value: the mapping reads it as "the field's default" for every field,
//! except where the field's type has `null` as a value of its own (`google.protobuf.Value`
//! and `NullValue`: then it is that value).
//!
//! pbjson's generated code refuses `null` for scalar, repeated and map fields, and reads it
//! as "unset" for `Value` fields, so that `{"value": null}` did not come back as it was
//! written. `build.rs` has every field read through [`NullOr`] instead.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::UnitDeserializer;
use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A field's value, or `None` where JSON gave `null` and the type has no value for it.
pub struct NullOr<T>(pub Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NullOr<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<fn() -> T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = NullOr<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field value or null")
            }

            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                // A type that reads `null` (Value, NullValue) takes it; for the others it is
                // an error, and `null` means the default.
                Ok(NullOr(T::deserialize(UnitDeserializer::<E>::new()).ok()))
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                self.visit_none()
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                T::deserialize(d).map(|v| NullOr(Some(v)))
            }
        }

        deserializer.deserialize_option(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protojson::{NullValue, NumberDeserialize, OpenEnum, Value};

    fn read<T: for<'de> Deserialize<'de>>(json: &str) -> Option<T> {
        serde_json::from_str::<NullOr<T>>(json).expect("reads").0
    }

    #[test]
    fn null_is_the_default_except_where_it_is_a_value() {
        assert!(read::<String>("null").is_none());
        assert!(read::<Vec<i32>>("null").is_none());
        assert!(read::<NumberDeserialize<i64>>("null").is_none());
        assert_eq!(read::<Value>("null"), Some(Value::from(())));
        assert_eq!(read::<OpenEnum<NullValue>>("null").map(|e| e.0), Some(0));
        assert_eq!(read::<String>("\"a\"").as_deref(), Some("a"));
        assert_eq!(read::<Value>("1.5"), Some(Value::from(1.5)));
        // Not null, not the type: still an error.
        assert!(serde_json::from_str::<NullOr<String>>("1").is_err());
    }
}
