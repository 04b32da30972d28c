//! Writing a message as canonical JSON text.
//!
//! Two things serde_json alone gets wrong for protobuf, both fixed here rather than in each
//! type's impl:
//! - serde_json writes a non-finite `f32`/`f64` as `null`; the mapping writes `"NaN"`,
//!   `"Infinity"` and `"-Infinity"`. The generated impls hand float fields straight to the
//!   serializer, so [`Canonical`] wraps it and catches them (serde has no hook below it:
//!   serde_json decides on `null` before its `Formatter` sees the number).
//! - a whole-number `float` or `double` is written without a fraction (`1`, not `1.0`), as
//!   protobuf's own printers write it ([`NumberFormatter`]).

use std::fmt::Display;

use serde::ser::{
    Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple,
    SerializeTupleStruct, SerializeTupleVariant, Serializer,
};

/// Writes `value` as compact canonical JSON, appending to `out`.
pub fn to_writer<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let mut serializer = serde_json::Serializer::with_formatter(out, NumberFormatter);
    value.serialize(Canonical(&mut serializer))
}

/// A serializer that writes non-finite floats as the mapping's strings and passes
/// everything else to the serializer it wraps (recursively: every nested value is wrapped).
pub struct Canonical<S>(pub S);

/// `value`, serialized through [`Canonical`].
struct Wrap<'a, T: ?Sized>(&'a T);

impl<T: Serialize + ?Sized> Serialize for Wrap<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Canonical(s))
    }
}

fn special(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

macro_rules! forward {
    ($($method:ident($($arg:ident: $t:ty),*);)*) => {$(
        fn $method(self, $($arg: $t),*) -> Result<S::Ok, S::Error> {
            self.0.$method($($arg),*)
        }
    )*};
}

impl<S: Serializer> Serializer for Canonical<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Canonical<S::SerializeSeq>;
    type SerializeTuple = Canonical<S::SerializeTuple>;
    type SerializeTupleStruct = Canonical<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Canonical<S::SerializeTupleVariant>;
    type SerializeMap = Canonical<S::SerializeMap>;
    type SerializeStruct = Canonical<S::SerializeStruct>;
    type SerializeStructVariant = Canonical<S::SerializeStructVariant>;

    forward! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_f32(self, v: f32) -> Result<S::Ok, S::Error> {
        if v.is_finite() { self.0.serialize_f32(v) } else { self.0.serialize_str(special(f64::from(v))) }
    }

    fn serialize_f64(self, v: f64) -> Result<S::Ok, S::Error> {
        if v.is_finite() { self.0.serialize_f64(v) } else { self.0.serialize_str(special(v)) }
    }

    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(&Wrap(v))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, v: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, &Wrap(v))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_variant(name, index, variant, &Wrap(v))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.0.serialize_seq(len).map(Canonical)
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len).map(Canonical)
    }

    fn serialize_tuple_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.0.serialize_tuple_struct(name, len).map(Canonical)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        self.0.serialize_tuple_variant(name, index, variant, len).map(Canonical)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        self.0.serialize_map(len).map(Canonical)
    }

    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeStruct, S::Error> {
        self.0.serialize_struct(name, len).map(Canonical)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.0.serialize_struct_variant(name, index, variant, len).map(Canonical)
    }

    fn collect_str<T: Display + ?Sized>(self, v: &T) -> Result<S::Ok, S::Error> {
        self.0.collect_str(v)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! compound {
    ($($tr:ident { $($method:ident($($arg:ident: $t:ty),*);)* })*) => {$(
        impl<S: $tr> $tr for Canonical<S> {
            type Ok = S::Ok;
            type Error = S::Error;
            $(
                fn $method<T: Serialize + ?Sized>(&mut self, $($arg: $t,)* v: &T) -> Result<(), S::Error> {
                    self.0.$method($($arg,)* &Wrap(v))
                }
            )*
            fn end(self) -> Result<S::Ok, S::Error> {
                self.0.end()
            }
        }
    )*};
}

compound! {
    SerializeSeq { serialize_element(); }
    SerializeTuple { serialize_element(); }
    SerializeTupleStruct { serialize_field(); }
    SerializeTupleVariant { serialize_field(); }
    SerializeStruct { serialize_field(key: &'static str); }
    SerializeStructVariant { serialize_field(key: &'static str); }
}

impl<S: SerializeMap> SerializeMap for Canonical<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), S::Error> {
        self.0.serialize_key(k)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), S::Error> {
        self.0.serialize_value(&Wrap(v))
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(&mut self, k: &K, v: &V) -> Result<(), S::Error> {
        self.0.serialize_entry(k, &Wrap(v))
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

/// serde_json's compact output, except that a `float` or `double` holding a whole number
/// (up to 2^53, where every integer is exact) is written without a fraction: `1`, not `1.0`,
/// as protobuf's C++ and Go JSON printers write it. So a JSON document stored in a
/// `google.protobuf.Value` comes back as it was sent. Negative zero keeps its sign (`-0.0`).
pub struct NumberFormatter;

/// 2^53 − 1, JavaScript's `Number.MAX_SAFE_INTEGER`: every integer up to it in size is
/// exactly a `f64`.
const EXACT_F64_INTEGERS: f64 = 9_007_199_254_740_991.0;
/// 2^24: every integer up to it in size is exactly a `f32`; beyond, the shortest decimal
/// form (what serde_json writes) is the better rendering.
const EXACT_F32_INTEGERS: f64 = 16_777_216.0;

/// `value` as an integer, if it is a whole number no larger than `limit` in size (and not
/// negative zero, which keeps its sign).
fn whole(value: f64, limit: f64) -> Option<i64> {
    // In range, so the conversion is exact.
    (value.fract() == 0.0 && value.abs() <= limit && !(value == 0.0 && value.is_sign_negative()))
        .then_some(value as i64)
}

impl serde_json::ser::Formatter for NumberFormatter {
    fn write_f64<W: ?Sized + std::io::Write>(&mut self, writer: &mut W, value: f64) -> std::io::Result<()> {
        match whole(value, EXACT_F64_INTEGERS) {
            Some(i) => self.write_i64(writer, i),
            None => serde_json::ser::CompactFormatter.write_f64(writer, value),
        }
    }

    fn write_f32<W: ?Sized + std::io::Write>(&mut self, writer: &mut W, value: f32) -> std::io::Result<()> {
        match whole(f64::from(value), EXACT_F32_INTEGERS) {
            Some(i) => self.write_i64(writer, i),
            None => serde_json::ser::CompactFormatter.write_f32(writer, value),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn json<T: Serialize>(v: &T) -> String {
        let mut out = Vec::new();
        to_writer(v, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn non_finite_floats_are_strings_everywhere() {
        assert_eq!(json(&f64::NAN), "\"NaN\"");
        assert_eq!(json(&f32::INFINITY), "\"Infinity\"");
        assert_eq!(json(&vec![1.5, f64::NEG_INFINITY]), "[1.5,\"-Infinity\"]");
        assert_eq!(json(&Some(f32::NAN)), "\"NaN\"");
        let map: BTreeMap<&str, Vec<f64>> = [("a", vec![f64::NAN])].into();
        assert_eq!(json(&map), r#"{"a":["NaN"]}"#);
    }

    #[test]
    fn whole_numbers_are_written_without_a_fraction() {
        assert_eq!(json(&1.0f64), "1");
        assert_eq!(json(&-3.0f64), "-3");
        assert_eq!(json(&9_007_199_254_740_991.0f64), "9007199254740991");
        assert_eq!(json(&9_007_199_254_740_992.0f64), "9007199254740992.0");
        assert_eq!(json(&-0.0f64), "-0.0");
        assert_eq!(json(&1e300f64), "1e+300");
        assert_eq!(json(&2.0f32), "2");
        assert_eq!(json(&0.1f32), "0.1");
    }
}
