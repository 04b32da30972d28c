//! Reading canonical JSON straight into a binary message (no intermediate message), by the
//! rules the generated impls follow: either field name accepted (the JSON name or the proto
//! name), unknown fields ignored, `null` for the field's default (except where `null` is a
//! value: `google.protobuf.Value` and `NullValue`), a field or oneof given twice refused,
//! numbers and bytes read by the generated code's own readers, well-known types by the
//! generated types' impls; defaults of fields without presence left out, as prost leaves them.

use std::fmt;

use serde::Deserialize;
use serde::de::value::{StrDeserializer, UnitDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::plan::{FieldPlan, MessagePlan, Plans, Scalar, Shape};
use super::shared::{BytesDeserialize, NumberDeserialize, deserialize_well_known};
use super::wire::{FIXED32, FIXED64, LEN, VARINT, put_key, put_len, put_varint, zigzag32, zigzag64};

/// One value, encoded.
enum Out {
    Varint(u64),
    Fixed32(u32),
    Fixed64(u64),
    Bytes(Vec<u8>),
}

impl Out {
    fn wire_type(&self) -> u8 {
        match self {
            Out::Varint(_) => VARINT,
            Out::Fixed32(_) => FIXED32,
            Out::Fixed64(_) => FIXED64,
            Out::Bytes(_) => LEN,
        }
    }

    /// Writes the value alone (a packed element).
    fn put(&self, buf: &mut Vec<u8>) {
        match self {
            Out::Varint(v) => put_varint(buf, *v),
            Out::Fixed32(v) => buf.extend_from_slice(&v.to_le_bytes()),
            Out::Fixed64(v) => buf.extend_from_slice(&v.to_le_bytes()),
            Out::Bytes(b) => {
                put_varint(buf, b.len() as u64);
                buf.extend_from_slice(b);
            }
        }
    }

    /// Writes the value as field `number`.
    fn put_field(&self, buf: &mut Vec<u8>, number: u32) {
        put_key(buf, number, self.wire_type());
        self.put(buf);
    }

    /// Whether it is its type's default (prost leaves those out for fields without presence,
    /// `-0.0` included).
    fn is_default(&self, t: &Scalar) -> bool {
        match (t, self) {
            (Scalar::Float, Out::Fixed32(v)) => f32::from_bits(*v) == 0.0,
            (Scalar::Double, Out::Fixed64(v)) => f64::from_bits(*v) == 0.0,
            (_, Out::Varint(v) | Out::Fixed64(v)) => *v == 0,
            (_, Out::Fixed32(v)) => *v == 0,
            (_, Out::Bytes(b)) => b.is_empty(),
        }
    }
}

/// Reads one message of the type planned at `index`; returns its encoding.
pub(super) struct MessageSeed<'a> {
    pub(super) plans: &'a Plans,
    pub(super) index: usize,
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_> {
    type Value = Vec<u8>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<u8>, D::Error> {
        let plan = self.plans.get(self.index);
        if let Some(wkt) = plan.well_known {
            return deserialize_well_known(wkt, deserializer);
        }
        deserializer.deserialize_map(MessageVisitor { plans: self.plans, plan })
    }
}

struct MessageVisitor<'a> {
    plans: &'a Plans,
    plan: &'a MessagePlan,
}

impl<'de> Visitor<'de> for MessageVisitor<'_> {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "struct {}", self.plan.full_name)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<u8>, A::Error> {
        let plan = self.plan;
        let mut out = Vec::new();
        // Which fields, and which oneofs, were given a value (not `null`) already.
        let mut seen = vec![false; plan.fields.len()];
        let mut oneof_seen = vec![false; plan.oneofs];
        while let Some(key) = map.next_key_seed(KeySeed { plan })? {
            let Some(i) = key else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let f = &plan.fields[i];
            if seen[i] || f.oneof.is_some_and(|o| oneof_seen[o]) {
                // serde's `duplicate_field` wants a `&'static str`; these names are not.
                return Err(de::Error::custom(format_args!("duplicate field `{}`", f.json_name)));
            }
            if map.next_value_seed(FieldSeed { plans: self.plans, field: f, out: &mut out })? {
                seen[i] = true;
                if let Some(o) = f.oneof {
                    oneof_seen[o] = true;
                }
            }
        }
        Ok(out)
    }
}

/// A field name: the index of the field it names, or `None` for an unknown one.
struct KeySeed<'a> {
    plan: &'a MessagePlan,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.plan.field_named(v))
    }
}

/// A field's value, written to `out`; `false` where JSON gave `null` for a field whose type
/// has no `null` (the default: nothing written).
struct FieldSeed<'a> {
    plans: &'a Plans,
    field: &'a FieldPlan,
    out: &'a mut Vec<u8>,
}

impl FieldSeed<'_> {
    fn singular(self, t: &Scalar, value: Out) -> bool {
        if self.field.presence || !value.is_default(t) {
            value.put_field(self.out, self.field.number);
        }
        true
    }
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field value or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        match &self.field.shape {
            // A type that has `null` as a value takes it; for every other, `null` is the default.
            Shape::Singular(t) if t.takes_null(self.plans) => {
                let value = ValueSeed { plans: self.plans, t }.deserialize(UnitDeserializer::<E>::new())?;
                Ok(self.singular(t, value))
            }
            _ => Ok(false),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        self.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        let (plans, field) = (self.plans, self.field);
        match &field.shape {
            Shape::Singular(t) => {
                let value = ValueSeed { plans, t }.deserialize(d)?;
                Ok(self.singular(t, value))
            }
            Shape::List(t) => {
                d.deserialize_seq(ListVisitor { plans, t, number: field.number, packed: field.packed, out: self.out })?;
                Ok(true)
            }
            Shape::Map(k, v) => {
                d.deserialize_map(MapVisitor { plans, k, v, number: field.number, out: self.out })?;
                Ok(true)
            }
        }
    }
}

/// One value of type `t` (a singular field, a list element or a map value).
struct ValueSeed<'a> {
    plans: &'a Plans,
    t: &'a Scalar,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Out;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Out, D::Error> {
        match self.t {
            Scalar::Message(m) => Ok(Out::Bytes(MessageSeed { plans: self.plans, index: *m }.deserialize(d)?)),
            t => scalar(t, d),
        }
    }
}

/// A value of a type that is not a message, encoded as prost encodes it.
fn scalar<'de, D: Deserializer<'de>>(t: &Scalar, d: D) -> Result<Out, D::Error> {
    Ok(match t {
        Scalar::Double => Out::Fixed64(NumberDeserialize::<f64>::deserialize(d)?.0.to_bits()),
        Scalar::Float => Out::Fixed32(NumberDeserialize::<f32>::deserialize(d)?.0.to_bits()),
        Scalar::Int32 => Out::Varint(i64::from(NumberDeserialize::<i32>::deserialize(d)?.0) as u64),
        Scalar::Sint32 => Out::Varint(zigzag32(NumberDeserialize::<i32>::deserialize(d)?.0)),
        Scalar::Sfixed32 => Out::Fixed32(NumberDeserialize::<i32>::deserialize(d)?.0 as u32),
        Scalar::Int64 => Out::Varint(NumberDeserialize::<i64>::deserialize(d)?.0 as u64),
        Scalar::Sint64 => Out::Varint(zigzag64(NumberDeserialize::<i64>::deserialize(d)?.0)),
        Scalar::Sfixed64 => Out::Fixed64(NumberDeserialize::<i64>::deserialize(d)?.0 as u64),
        Scalar::Uint32 => Out::Varint(u64::from(NumberDeserialize::<u32>::deserialize(d)?.0)),
        Scalar::Fixed32 => Out::Fixed32(NumberDeserialize::<u32>::deserialize(d)?.0),
        Scalar::Uint64 => Out::Varint(NumberDeserialize::<u64>::deserialize(d)?.0),
        Scalar::Fixed64 => Out::Fixed64(NumberDeserialize::<u64>::deserialize(d)?.0),
        Scalar::Bool => Out::Varint(u64::from(bool::deserialize(d)?)),
        Scalar::String => Out::Bytes(String::deserialize(d)?.into_bytes()),
        Scalar::Bytes => Out::Bytes(BytesDeserialize::<Vec<u8>>::deserialize(d)?.0),
        Scalar::Enum(e) => Out::Varint(i64::from(d.deserialize_any(EnumVisitor { desc: e })?) as u64),
        Scalar::Message(_) => return Err(de::Error::custom("a message where a value belongs")),
    })
}

/// An enum value: a known value's name, or any number (proto3 enums are open).
struct EnumVisitor<'a> {
    desc: &'a prost_reflect::EnumDescriptor,
}

impl<'de> Visitor<'de> for EnumVisitor<'_> {
    type Value = i32;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an enum value's name or number ({})", self.desc.name())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i32, E> {
        self.desc
            .get_value_by_name(v)
            .map(|value| value.number())
            .ok_or_else(|| E::custom(format_args!("unknown variant `{v}` of enum {}", self.desc.full_name())))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i32, E> {
        i32::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i32, E> {
        i32::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i32, E> {
        // `1.0` or `1e0` is the number 1, as for integer fields.
        let in_range = v.fract() == 0.0 && v >= f64::from(i32::MIN) && v <= f64::from(i32::MAX);
        in_range.then_some(v as i32).ok_or_else(|| E::invalid_value(de::Unexpected::Float(v), &self))
    }

    fn visit_unit<E: de::Error>(self) -> Result<i32, E> {
        // `null` is the one value of `google.protobuf.NullValue`.
        if self.desc.full_name() == "google.protobuf.NullValue" {
            Ok(0)
        } else {
            Err(E::invalid_type(de::Unexpected::Unit, &self))
        }
    }
}

/// A repeated field's elements, written packed where the field is.
struct ListVisitor<'a> {
    plans: &'a Plans,
    t: &'a Scalar,
    number: u32,
    packed: bool,
    out: &'a mut Vec<u8>,
}

impl<'de> Visitor<'de> for ListVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let packed = self.packed && self.t.packable();
        let mut run = Vec::new();
        while let Some(v) = seq.next_element_seed(ValueSeed { plans: self.plans, t: self.t })? {
            if packed {
                v.put(&mut run);
            } else {
                v.put_field(self.out, self.number);
            }
        }
        if packed && !run.is_empty() {
            put_len(self.out, self.number, &run);
        }
        Ok(())
    }
}

/// A map field's entries (JSON keys read by the key type's rules), each written as an entry
/// message.
struct MapVisitor<'a> {
    plans: &'a Plans,
    k: &'a Scalar,
    v: &'a Scalar,
    number: u32,
    out: &'a mut Vec<u8>,
}

impl<'de> Visitor<'de> for MapVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut entry = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let key = map_key::<A::Error>(self.k, &key)?;
            let value = map.next_value_seed(ValueSeed { plans: self.plans, t: self.v })?;
            entry.clear();
            key.put_field(&mut entry, 1);
            value.put_field(&mut entry, 2);
            put_len(self.out, self.number, &entry);
        }
        Ok(())
    }
}

fn map_key<E: de::Error>(t: &Scalar, key: &str) -> Result<Out, E> {
    match t {
        Scalar::String => Ok(Out::Bytes(key.as_bytes().to_vec())),
        Scalar::Bool => match key {
            "true" => Ok(Out::Varint(1)),
            "false" => Ok(Out::Varint(0)),
            _ => Err(E::invalid_value(de::Unexpected::Str(key), &"true or false")),
        },
        // A JSON key is a string: read it as a number's string form, as the generated code does.
        t if t.packable() && !matches!(t, Scalar::Enum(_) | Scalar::Float | Scalar::Double) => {
            let d: StrDeserializer<'_, E> = key.into_deserializer();
            scalar(t, d)
        }
        _ => Err(E::custom("a map key of a type protobuf does not allow")),
    }
}
