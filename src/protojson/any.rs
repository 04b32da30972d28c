//! `google.protobuf.Any` in its canonical JSON form: the packed message's own JSON with an
//! `"@type"` member first (`{"@type": "type.googleapis.com/pkg.Msg", "field": 1}`), or, for a
//! well-known type with a JSON form of its own, `{"@type": …, "value": <that form>}`.
//!
//! Writing and reading one needs the packed type's JSON, and an `Any` may hold any message
//! while messages hold `Any`s: a lookup compiled in here would make this module and the
//! generated code depend on each other. So the lookup is registered at run time
//! ([`register_types`]): `build.rs` generates one for every message in `proto/` and the
//! well-known types, and `transcode::codec` registers it when it builds a codec. (pbjson-types'
//! `Any` is an ordinary message, `{"typeUrl": …, "value": "<base64>"}`, which no other
//! implementation reads.) A type the lookup does not know is an error both ways.

use std::fmt;
use std::sync::OnceLock;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::ser::{self, SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// `google.protobuf.Any`: a message of any type, packed with its type URL.
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct Any {
    /// `type.googleapis.com/` and the packed message's full name.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// The packed message, encoded. (`Bytes`, as in pbjson-types and prost-types.)
    #[prost(bytes = "bytes", tag = "2")]
    pub value: bytes::Bytes,
}

/// Finds how to write and read the JSON of a type, by its full name.
pub type Lookup = fn(&str) -> Option<AnyType>;

static LOOKUP: OnceLock<Lookup> = OnceLock::new();

/// Registers the types an `Any` may hold, for the whole process; the first registration
/// stays (every codec of this crate registers the same generated lookup).
pub fn register_types(lookup: Lookup) {
    let _ = LOOKUP.get_or_init(|| lookup);
}

fn registered(name: &str) -> Option<AnyType> {
    LOOKUP.get().and_then(|lookup| lookup(name))
}

impl Serialize for Any {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize(&self.type_url, &self.value, registered, s)
    }
}

impl<'de> Deserialize<'de> for Any {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize(d, registered).map(|(type_url, value)| Any { type_url, value: value.into() })
    }
}

/// How to write and read the JSON of one type that an `Any` may hold.
#[derive(Clone, Copy)]
pub struct AnyType {
    to_json: fn(&[u8]) -> Result<Box<RawValue>, String>,
    from_json: fn(&str) -> Result<Vec<u8>, String>,
    /// A well-known type with a JSON form of its own, held under `"value"`.
    special: bool,
}

impl AnyType {
    /// An ordinary message: its members sit beside `"@type"`.
    pub fn message<T: prost::Message + Default + Serialize + DeserializeOwned>() -> Self {
        Self { to_json: to_json::<T>, from_json: from_json::<T>, special: false }
    }

    /// A well-known type whose JSON is not an object of its fields (Timestamp, Struct, the
    /// wrappers, Any itself …): it sits under `"value"`.
    pub fn special<T: prost::Message + Default + Serialize + DeserializeOwned>() -> Self {
        Self { to_json: to_json::<T>, from_json: from_json::<T>, special: true }
    }
}

fn to_json<T: prost::Message + Default + Serialize>(binary: &[u8]) -> Result<Box<RawValue>, String> {
    let message = T::decode(binary).map_err(|e| format!("its value is not valid protobuf: {e}"))?;
    let mut out = Vec::with_capacity(binary.len() * 2 + 16);
    super::to_writer(&message, &mut out).map_err(|e| e.to_string())?;
    let text = String::from_utf8(out).map_err(|e| e.to_string())?;
    RawValue::from_string(text).map_err(|e| e.to_string())
}

fn from_json<T: prost::Message + Default + DeserializeOwned>(json: &str) -> Result<Vec<u8>, String> {
    // The enclosing message's depth was checked already; the parser's own limit still holds.
    serde_json::from_str::<T>(json).map(|m| m.encode_to_vec()).map_err(|e| e.to_string())
}

/// The type name of a type URL: what follows its last `/`.
fn type_name(type_url: &str) -> &str {
    type_url.rsplit('/').next().unwrap_or(type_url)
}

/// Writes an `Any` of `type_url` holding `value`, with `lookup` for its type.
pub fn serialize<S: Serializer>(type_url: &str, value: &[u8], lookup: Lookup, s: S) -> Result<S::Ok, S::Error> {
    if type_url.is_empty() && value.is_empty() {
        return s.serialize_map(Some(0))?.end();
    }
    let ty = lookup(type_name(type_url)).ok_or_else(|| {
        ser::Error::custom(format!("a google.protobuf.Any holds {type_url}, a type this build does not know"))
    })?;
    let json =
        (ty.to_json)(value).map_err(|e| ser::Error::custom(format!("a google.protobuf.Any of {type_url}: {e}")))?;
    let mut map = s.serialize_map(None)?;
    map.serialize_entry("@type", type_url)?;
    if ty.special {
        map.serialize_entry("value", &json)?;
    } else {
        let members: Members<'_> = serde_json::from_str(json.get()).map_err(ser::Error::custom)?;
        for (k, v) in members.0 {
            map.serialize_entry(k, v)?;
        }
    }
    map.end()
}

/// Reads an `Any`, with `lookup` for the type its `"@type"` names: (type URL, value).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D, lookup: Lookup) -> Result<(String, Vec<u8>), D::Error> {
    let members = OwnedMembers::deserialize(d)?.0;
    if members.is_empty() {
        return Ok((String::new(), Vec::new()));
    }
    let mut type_url = None;
    let mut rest = Vec::with_capacity(members.len());
    for (k, v) in &members {
        if k == "@type" {
            let url: String =
                serde_json::from_str(v.get()).map_err(|_| de::Error::custom("\"@type\" must be a string"))?;
            type_url = Some(url);
        } else {
            rest.push((k.as_str(), v.get()));
        }
    }
    let type_url = type_url.ok_or_else(|| de::Error::custom("a google.protobuf.Any needs an \"@type\""))?;
    let ty = lookup(type_name(&type_url))
        .ok_or_else(|| de::Error::custom(format!("\"@type\" names {type_url}, a type this build does not know")))?;
    let value = if ty.special {
        // Other members are ignored, as unknown fields are everywhere.
        match rest.iter().find(|(k, _)| *k == "value") {
            Some((_, json)) => (ty.from_json)(json),
            None => Err("a well-known type in a google.protobuf.Any is held in a \"value\" member".into()),
        }
    } else {
        let mut object = String::from("{");
        for (i, (k, v)) in rest.iter().enumerate() {
            if i > 0 {
                object.push(',');
            }
            object.push_str(&serde_json::to_string(k).map_err(de::Error::custom)?);
            object.push(':');
            object.push_str(v);
        }
        object.push('}');
        (ty.from_json)(&object)
    };
    value
        .map(|v| (type_url.clone(), v))
        .map_err(|e| de::Error::custom(format!("a google.protobuf.Any of {type_url}: {e}")))
}

/// An object's members, in order, borrowed from the text.
struct Members<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<&'de str, &'de RawValue>()? {
                    out.push(entry);
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// An object's members, in order, owned (the input need not outlive them).
struct OwnedMembers(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for OwnedMembers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OwnedMembers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a google.protobuf.Any: a JSON object with \"@type\"")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OwnedMembers, A::Error> {
                let mut out: Vec<(String, Box<RawValue>)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    if out.iter().any(|(seen, _)| *seen == k) {
                        return Err(de::Error::custom(format!("the member \"{k}\" appears twice")));
                    }
                    out.push((k, v));
                }
                Ok(OwnedMembers(out))
            }
        }
        d.deserialize_map(V)
    }
}
