//! JSON bodies as natter reads them (HTTP bodies and WebSocket frames), stricter than serde's
//! defaults in two ways the contract asks for:
//!
//! - **No key twice.** serde_json keeps the last of a duplicated key in a map or a `Value`
//!   (typed structs already refuse a duplicated field): [`check_unique_keys`] refuses a key
//!   given twice in any object, at any depth, before anything reads the body.
//! - **Objects are objects.** serde's derived structs also accept a JSON array, read field by
//!   field in declaration order (`["subject", null, {}, ["bob"]]` as a conversation). [`from_slice`]
//!   reads through [`Strict`], which refuses an array wherever a struct is expected, at any
//!   depth.
//!
//! [`RawJson`] keeps a JSON value exactly as sent (inbox messages: numbers beyond `f64` come
//! back digit for digit).

use std::collections::HashSet;
use std::fmt;

use schemars::JsonSchema;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Reads a JSON body as `T`: no key twice in any object ([`check_unique_keys`]), and no array
/// where `T` or anything in it is a struct ([`Strict`]).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    check_unique_keys(bytes)?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(Strict(&mut de))?;
    de.end()?;
    Ok(value)
}

/// [`from_slice`] for text.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    from_slice(text.as_bytes())
}

/// Fails when `bytes` is not JSON or when some object in it has a key twice.
pub fn check_unique_keys(bytes: &[u8]) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    UniqueKeys.deserialize(&mut de)?;
    de.end()
}

/// Walks a JSON value, remembering each object's keys.
#[derive(Clone, Copy)]
struct UniqueKeys;

impl<'de> DeserializeSeed<'de> for UniqueKeys {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if let Some(key) = seen.replace(key) {
                return Err(de::Error::custom(format!(
                    "the key {key:?} appears twice in one object"
                )));
            }
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

// ---- Strict: no arrays for structs ------------------------------------------------------------

/// A deserializer that reads like the one it wraps, except that a struct (`deserialize_struct`,
/// at any depth) must be a JSON object: serde's derive would also read it from an array.
pub struct Strict<D>(pub D);

/// The visitor of a value read through [`Strict`]: everything it is given is wrapped again, so
/// that the values inside are strict too. `object` marks a struct's visitor, which refuses
/// arrays.
struct Wrap<V> {
    inner: V,
    object: bool,
}

impl<V> Wrap<V> {
    fn any(inner: V) -> Self {
        Wrap {
            inner,
            object: false,
        }
    }
}

macro_rules! forward_deserialize {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                self.0.$method(Wrap::any(visitor))
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_unit_struct(name, Wrap::any(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        if name.starts_with("$serde_json::private::") {
            // `RawValue` (and serde_json's other private newtypes) talk to serde_json directly.
            return self.0.deserialize_newtype_struct(name, visitor);
        }
        self.0.deserialize_newtype_struct(name, Wrap::any(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple(len, Wrap::any(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0
            .deserialize_tuple_struct(name, len, Wrap::any(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = Wrap {
            inner: visitor,
            object: true,
        };
        self.0.deserialize_struct(name, fields, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, Wrap::any(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident: $ty:ty)*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.inner.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit! {
        visit_bool: bool visit_i8: i8 visit_i16: i16 visit_i32: i32 visit_i64: i64
        visit_i128: i128 visit_u8: u8 visit_u16: u16 visit_u32: u32 visit_u64: u64
        visit_u128: u128 visit_f32: f32 visit_f64: f64 visit_char: char visit_str: &str
        visit_borrowed_str: &'de str visit_string: String visit_bytes: &[u8]
        visit_borrowed_bytes: &'de [u8] visit_byte_buf: Vec<u8>
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.inner.visit_some(Strict(deserializer))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        self.inner.visit_newtype_struct(Strict(deserializer))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        if self.object {
            return Err(de::Error::invalid_type(
                de::Unexpected::Seq,
                &"a JSON object",
            ));
        }
        self.inner.visit_seq(Strict(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(Strict(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(Strict(data))
    }
}

/// A seed whose value is read strictly.
struct StrictSeed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for StrictSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(Strict(deserializer))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Strict<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Strict<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(StrictSeed(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Strict<A> {
    type Error = A::Error;
    type Variant = Strict<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        let (value, variant) = self.0.variant_seed(StrictSeed(seed))?;
        Ok((value, Strict(variant)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Strict<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(StrictSeed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrap::any(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let visitor = Wrap {
            inner: visitor,
            object: true,
        };
        self.0.struct_variant(fields, visitor)
    }
}

// ---- RawJson: a value exactly as sent ---------------------------------------------------------

/// Any JSON value, kept as its text (without the whitespace between tokens): serializing it
/// writes that text, so numbers keep every digit (`12345678901234567890123` does not become
/// `1.2345678901234568e22`, as it would through `serde_json::Value`).
#[derive(Clone)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// Reads JSON text (it must be one valid JSON value); whitespace between tokens is dropped.
    pub fn from_text(text: &str) -> Result<Self, serde_json::Error> {
        let raw: &RawValue = serde_json::from_str(text)?;
        RawValue::from_string(compact(raw.get())).map(RawJson)
    }

    /// A value built in Rust (its numbers are what `serde_json::Value` holds).
    pub fn from_value(value: &serde_json::Value) -> Self {
        // A `Value` always serializes.
        RawJson(
            serde_json::value::to_raw_value(value).unwrap_or_else(|_| RawValue::NULL.to_owned()),
        )
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }
}

/// `text` (valid JSON) without the whitespace between tokens.
fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        RawValue::from_string(compact(raw.get()))
            .map(RawJson)
            .map_err(de::Error::custom)
    }
}

impl JsonSchema for RawJson {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AnyValue".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!(true)
    }
}

// ---- Tags are names ---------------------------------------------------------------------------

/// The map of an internally tagged enum (`#[serde(tag = "type")]`), whose tag must be a name.
/// serde also reads a variant's index as its tag once a value has been buffered (nested content
/// is: `{"type": 0, "children": []}` would be the first variant); `TagNames(map)` refuses that.
/// Only the tag is read as an identifier, so the wrapper changes nothing else.
pub struct TagNames<A>(pub A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for TagNames<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(seed)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.0.next_value_seed(NameSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

struct NameSeed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for NameSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(NameValue(deserializer))
    }
}

/// A value whose identifier, if one is read from it, is a string.
struct NameValue<D>(D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for NameValue<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_identifier(NameOnly(visitor))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        ignored_any
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// An identifier visitor that takes names only; the visitor's defaults refuse the rest.
struct NameOnly<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for NameOnly<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<V::Value, E> {
        self.0.visit_str(v)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<V::Value, E> {
        self.0.visit_borrowed_str(v)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<V::Value, E> {
        self.0.visit_string(v)
    }
}

/// Reads an optional field that may be left out but not given as `null` (where the contract
/// does not list `null` for it): `null` is refused the way serde refuses any other wrong type,
/// e.g. "invalid type: null, expected a string".
///
/// `#[serde(default, deserialize_with = "crate::json::present")]`.
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// An integer type [`whole`] and [`whole_opt`] read.
pub trait WholeNumber: Sized {
    /// The smallest value.
    const MIN: i128;
    /// The largest value.
    const MAX: i128;
    /// `v`, known to lie within `MIN..=MAX`.
    fn from_i128(v: i128) -> Self;
}

macro_rules! whole_number {
    ($($t:ty)*) => {
        $(
            impl WholeNumber for $t {
                const MIN: i128 = <$t>::MIN as i128;
                const MAX: i128 = <$t>::MAX as i128;
                fn from_i128(v: i128) -> Self {
                    v as $t
                }
            }
        )*
    };
}

whole_number! { u32 u64 i64 }

/// Reads an integer field the way JSON Schema counts integers: any JSON number that is a whole
/// number within the type's range, so `636.0` is 636 (serde alone refuses a number written with
/// a fraction part). `636.5` and numbers out of range are refused, as serde refuses them.
///
/// `#[serde(deserialize_with = "crate::json::whole")]`.
pub fn whole<'de, D: Deserializer<'de>, T: WholeNumber>(deserializer: D) -> Result<T, D::Error> {
    deserializer.deserialize_any(WholeVisitor(std::marker::PhantomData))
}

/// [`whole`] for an optional field; `null` is `None`.
///
/// `#[serde(default, deserialize_with = "crate::json::whole_opt")]`.
pub fn whole_opt<'de, D: Deserializer<'de>, T: WholeNumber>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Ok(Option::<Whole<T>>::deserialize(deserializer)?.map(|w| w.0))
}

struct Whole<T>(T);

impl<'de, T: WholeNumber> Deserialize<'de> for Whole<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        whole(deserializer).map(Whole)
    }
}

struct WholeVisitor<T>(std::marker::PhantomData<T>);

impl<T: WholeNumber> WholeVisitor<T> {
    fn check<E: de::Error>(v: i128, unexpected: de::Unexpected) -> Result<T, E> {
        if (T::MIN..=T::MAX).contains(&v) {
            Ok(T::from_i128(v))
        } else {
            Err(E::invalid_value(
                unexpected,
                &WholeVisitor::<T>(std::marker::PhantomData),
            ))
        }
    }
}

impl<T: WholeNumber> Visitor<'_> for WholeVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an integer from {} to {}", T::MIN, T::MAX)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Self::check(v.into(), de::Unexpected::Signed(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Self::check(v.into(), de::Unexpected::Unsigned(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        // Every f64 beyond 2^63 in magnitude is whole; the bound keeps `as i128` exact.
        if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e38 {
            Self::check(v as i128, de::Unexpected::Float(v))
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        a: u32,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: Option<String>,
        inner: Option<Inner>,
        list: Option<Vec<Inner>>,
        map: Option<BTreeMap<String, String>>,
        any: Option<serde_json::Value>,
    }

    #[test]
    fn structs_must_be_objects_at_any_depth() {
        assert!(serde_json::from_str::<Outer>(r#"["n", null, null, null, null]"#).is_ok());
        assert!(from_str::<Outer>(r#"["n", null, null, null, null]"#).is_err());
        assert!(from_str::<Outer>(r#"{"inner": [1]}"#).is_err());
        assert!(from_str::<Outer>(r#"{"list": [[1]]}"#).is_err());
        assert!(from_str::<Vec<Inner>>(r#"[[1]]"#).is_err());
        let ok: Outer =
            from_str(r#"{"name": "n", "inner": {"a": 1}, "list": [{"a": 2}], "map": {"k": "v"}, "any": [1, {"b": [2]}]}"#)
                .unwrap();
        assert_eq!(ok.inner, Some(Inner { a: 1 }));
        assert_eq!(ok.list, Some(vec![Inner { a: 2 }]));
        assert_eq!(ok.any, Some(serde_json::json!([1, {"b": [2]}])));
        // serde's own errors still come through.
        let err = from_str::<Outer>(r#"{"nope": 1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn content_blocks_and_nodes_must_be_objects() {
        use crate::content::Content;
        for text in [
            r#"[["text", ["hi"]]]"#,
            r#"[{"type": "text", "children": [["bold", ["hi"]]]}]"#,
            r#"[["location", 1.0, 2.0]]"#,
        ] {
            assert!(from_str::<Content>(text).is_err(), "{text}");
            assert!(serde_json::from_str::<Content>(text).is_err(), "{text}");
        }
        let ok: Content = from_str(
            r#"[{"type": "text", "children": ["hi", {"type": "bold", "children": ["b"]}]}]"#,
        )
        .unwrap();
        assert_eq!(ok.len(), 1);
    }

    #[test]
    fn a_key_twice_is_refused_at_any_depth() {
        assert!(from_str::<serde_json::Value>(r#"{"a": 1, "a": 2}"#).is_err());
        assert!(
            from_str::<serde_json::Value>(r#"[{"x": {"a": 1, "b": {"c": 1, "c": 1}}}]"#).is_err()
        );
        assert!(from_str::<BTreeMap<String, String>>(r#"{"k": "1", "k": "2"}"#).is_err());
        let err = check_unique_keys(br#"{"m": {"k": 1, "k": 2}}"#).unwrap_err();
        assert!(err.to_string().contains("\"k\" appears twice"), "{err}");
        // The same key in different objects is fine; escapes name the same key.
        assert!(check_unique_keys(br#"[{"a": 1}, {"a": 2}, {"b": {"a": 3}}]"#).is_ok());
        assert!(check_unique_keys(br#"{"a": 1, "\u0061": 2}"#).is_err());
        assert!(check_unique_keys(b"{").is_err());
        assert!(check_unique_keys(b"1 2").is_err());
    }

    #[test]
    fn raw_json_keeps_numbers_exactly() {
        let raw: RawJson = from_str(r#" { "n" : [12345678901234567890123, 1.0, -0.000000000000000000001] , "s": "a b\"" } "#).unwrap();
        assert_eq!(
            raw.get(),
            r#"{"n":[12345678901234567890123,1.0,-0.000000000000000000001],"s":"a b\""}"#
        );
        assert_eq!(serde_json::to_string(&raw).unwrap(), raw.get());
        #[derive(Serialize)]
        struct Frame {
            message: RawJson,
        }
        let frame = serde_json::to_string(&Frame {
            message: raw.clone(),
        })
        .unwrap();
        assert_eq!(frame, format!("{{\"message\":{}}}", raw.get()));
        assert_eq!(RawJson::from_text(raw.get()).unwrap(), raw);
        assert_eq!(
            RawJson::from_value(&serde_json::json!({"a": 1})).get(),
            r#"{"a":1}"#
        );
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Numbers {
        #[serde(deserialize_with = "whole")]
        size: u64,
        #[serde(default, deserialize_with = "whole_opt")]
        width: Option<u32>,
        #[serde(default, deserialize_with = "whole_opt")]
        at: Option<i64>,
    }

    #[test]
    fn whole_numbers_may_have_a_zero_fraction() {
        let read = |json: &str| from_str::<Numbers>(json).map_err(|e| e.to_string());
        let n = |size, width, at| Numbers { size, width, at };
        assert_eq!(read(r#"{"size": 636}"#), Ok(n(636, None, None)));
        assert_eq!(read(r#"{"size": 636.0}"#), Ok(n(636, None, None)));
        assert_eq!(
            read(r#"{"size": 6.36e2, "width": 1e3}"#),
            Ok(n(636, Some(1000), None))
        );
        assert_eq!(read(r#"{"size": 0, "width": null}"#), Ok(n(0, None, None)));
        assert_eq!(read(r#"{"size": -0.0}"#), Ok(n(0, None, None)));
        assert_eq!(
            read(r#"{"size": 18446744073709551615, "width": 4294967295.0}"#),
            Ok(n(u64::MAX, Some(u32::MAX), None))
        );
        assert_eq!(
            read(r#"{"size": 1, "at": -1700000000000.0}"#),
            Ok(n(1, None, Some(-1_700_000_000_000)))
        );
        for (json, error) in [
            (r#"{"size": 636.5}"#, "invalid value: floating point `636.5`, expected an integer from 0 to 18446744073709551615"),
            (r#"{"size": -1}"#, "invalid value: integer `-1`, expected an integer from 0 to 18446744073709551615"),
            (r#"{"size": -1.0}"#, "invalid value: floating point `-1.0`, expected an integer from 0 to 18446744073709551615"),
            (r#"{"size": 1.8446744073709552e19}"#, "invalid value: floating point `1.8446744073709552e+19`, expected an integer from 0 to 18446744073709551615"),
            (r#"{"size": 1e300}"#, "invalid value: floating point `1e+300`, expected an integer from 0 to 18446744073709551615"),
            (r#"{"size": 1, "width": 4294967296}"#, "invalid value: integer `4294967296`, expected an integer from 0 to 4294967295"),
            (r#"{"size": 1, "width": 0.5}"#, "invalid value: floating point `0.5`, expected an integer from 0 to 4294967295"),
            (r#"{"size": "1"}"#, "invalid type: string \"1\", expected an integer from 0 to 18446744073709551615"),
            (r#"{"size": 1, "at": true}"#, "invalid type: boolean `true`, expected an integer from -9223372036854775808 to 9223372036854775807"),
        ] {
            let got = read(json).unwrap_err();
            assert!(got.starts_with(error), "{json}: {got}");
        }
    }

    #[test]
    fn present_fields_may_be_left_out_but_not_null() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct Body {
            #[serde(default, deserialize_with = "present")]
            text: Option<String>,
        }
        assert_eq!(from_str::<Body>("{}").unwrap(), Body { text: None });
        assert_eq!(
            from_str::<Body>(r#"{"text": "a"}"#).unwrap(),
            Body {
                text: Some("a".into())
            }
        );
        let err = from_str::<Body>(r#"{"text": null}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid type: null, expected a string"),
            "{err}"
        );
    }
}
