//! A budget for what decoding one message from a peer may allocate ([`super::decode`]).
//!
//! bincode's limit counts the bytes it reads, but what they decode to can be far larger: an
//! empty `String` is one byte on the wire and 24 in memory, a unit enum variant one byte and
//! the size of its largest variant, a `()` nothing at all (so a five-byte `Vec<()>` can claim
//! 2^64 elements and spin until it has them). So the decode runs through [`De`], a serde
//! `Deserializer` that wraps bincode's and every visitor, seed and access it hands out, and
//! charges one [`Budget`] per decode for what the value allocates as it is built:
//!
//! - each element of a sequence ([`SEQ_SLOT`] times its size, at least one byte: a `Vec` that
//!   grows by doubling holds up to twice its length, and the old block while it moves), all of
//!   them at once when the first one is decoded, since bincode knows how many follow: a
//!   claimed length the budget cannot cover is refused before more is decoded;
//! - each entry of a map ([`MAP_SLOT`] times its key's and value's sizes plus one byte: hash
//!   tables and B-tree nodes keep spare slots and control bytes too);
//! - each string and byte buffer its length.
//!
//! The fields of a struct, tuple or enum variant are not charged: they live inside their
//! parent (charged if it is an element or an entry; the message itself is on the stack). An
//! `Option` or a newtype likewise. Not counted: the contents of a `Box`, `Rc` or `Arc` (serde
//! cannot tell them from the value they hold), and what serde preallocates for a claimed
//! length (capped by serde at 1 MiB per sequence being read). A charge the budget cannot cover
//! fails the decode, and [`Budget::exceeded`] tells the caller why.
//!
//! The wrappers hold a reference to the budget and their inner value and allocate nothing: a
//! charge is a subtraction, once per sequence, map entry, string or buffer.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::size_of;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

/// How many times its size a sequence element is charged.
const SEQ_SLOT: usize = 3;

/// How many times the size of its key and value, plus one byte, a map entry is charged.
const MAP_SLOT: usize = 4;

/// What one decode may still allocate, shared by all its wrappers.
#[derive(Debug)]
pub(crate) struct Budget {
    /// Bytes left.
    left: Cell<usize>,
    /// Whether a charge found too few left.
    exceeded: Cell<bool>,
}

impl Budget {
    /// A budget of `bytes`.
    pub(crate) fn new(bytes: usize) -> Self {
        Self {
            left: Cell::new(bytes),
            exceeded: Cell::new(false),
        }
    }

    /// Whether the decode ran out of budget (and failed for it).
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded.get()
    }

    /// A seed that decodes a `T` charging this budget.
    pub(crate) fn seed<T>(&self) -> Seed<'_, PhantomData<T>> {
        Seed::new(PhantomData, self)
    }

    /// Takes `bytes` from what is left, or fails the decode.
    #[inline]
    fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        match self.left.get().checked_sub(bytes) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => Err(self.exhausted()),
        }
    }

    /// Out of line: the hot path of a charge is one subtraction and one branch.
    #[cold]
    #[inline(never)]
    fn exhausted<E: de::Error>(&self) -> E {
        self.exceeded.set(true);
        E::custom("the message decodes larger than its bound")
    }
}

/// A seed whose value is decoded charging the budget.
pub(crate) struct Seed<'b, S> {
    inner: S,
    budget: &'b Budget,
}

impl<'b, S> Seed<'b, S> {
    fn new(inner: S, budget: &'b Budget) -> Self {
        Self { inner, budget }
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(De::new(deserializer, self.budget))
    }
}

/// A deserializer that hands its visitors budgeted accesses.
pub(crate) struct De<'b, D> {
    inner: D,
    budget: &'b Budget,
}

impl<'b, D> De<'b, D> {
    fn new(inner: D, budget: &'b Budget) -> Self {
        Self { inner, budget }
    }

    /// `visitor`, charging this budget; `inline` when the sequence it may visit is the fields
    /// of a struct, tuple or variant rather than the elements of a collection.
    #[inline]
    fn visitor<V>(&self, visitor: V, inline: bool) -> Vis<'b, V> {
        Vis::new(visitor, self.budget, inline)
    }
}

/// Forwards `deserialize_*` methods that take only a visitor.
macro_rules! forward {
    ($($method:ident)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            let visitor = self.visitor(visitor, false);
            self.inner.$method(visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for De<'_, D> {
    type Error = D::Error;

    forward! {
        deserialize_any deserialize_bool
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string
        deserialize_bytes deserialize_byte_buf deserialize_option deserialize_unit
        deserialize_seq deserialize_map deserialize_identifier deserialize_ignored_any
    }

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.visitor(visitor, false);
        self.inner.deserialize_unit_struct(name, visitor)
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.visitor(visitor, false);
        self.inner.deserialize_newtype_struct(name, visitor)
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.visitor(visitor, true);
        self.inner.deserialize_tuple(len, visitor)
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.visitor(visitor, true);
        self.inner.deserialize_tuple_struct(name, len, visitor)
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.visitor(visitor, true);
        self.inner.deserialize_struct(name, fields, visitor)
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.visitor(visitor, false);
        self.inner.deserialize_enum(name, variants, visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// A visitor that charges strings and byte buffers and budgets what it is handed to visit.
struct Vis<'b, V> {
    inner: V,
    budget: &'b Budget,
    /// Whether a sequence visited is the fields of a struct, tuple or variant (not charged).
    inline: bool,
}

/// Forwards `visit_*` methods of a value that allocates nothing.
macro_rules! forward_plain {
    ($($method:ident($ty:ty))*) => {$(
        #[inline]
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

/// Forwards `visit_*` methods of a string or byte buffer, charging its length first.
macro_rules! forward_charged {
    ($($method:ident($ty:ty))*) => {$(
        #[inline]
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.budget.charge(v.len())?;
            self.inner.$method(v)
        }
    )*};
}

impl<'b, V> Vis<'b, V> {
    fn new(inner: V, budget: &'b Budget, inline: bool) -> Self {
        Self {
            inner,
            budget,
            inline,
        }
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Vis<'_, V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(formatter)
    }

    forward_plain! {
        visit_bool(bool)
        visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64) visit_i128(i128)
        visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64) visit_u128(u128)
        visit_f32(f32) visit_f64(f64) visit_char(char)
    }

    forward_charged! {
        visit_str(&str) visit_borrowed_str(&'de str) visit_string(String)
        visit_bytes(&[u8]) visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    #[inline]
    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    #[inline]
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    #[inline]
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.inner.visit_some(De::new(deserializer, self.budget))
    }

    #[inline]
    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .visit_newtype_struct(De::new(deserializer, self.budget))
    }

    #[inline]
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.inner.visit_seq(Seq {
            inner: seq,
            budget: self.budget,
            paid: self.inline,
        })
    }

    #[inline]
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(Map {
            inner: map,
            budget: self.budget,
        })
    }

    #[inline]
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(Enum {
            inner: data,
            budget: self.budget,
        })
    }
}

/// The elements of a sequence (charged) or the fields of a struct, tuple or variant (not).
struct Seq<'b, A> {
    inner: A,
    budget: &'b Budget,
    /// Whether nothing is to be charged: fields, or elements already paid for.
    paid: bool,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<'_, A> {
    type Error = A::Error;

    #[inline]
    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        let element = self.inner.next_element_seed(Seed::new(seed, self.budget))?;
        // Charged before the visitor stores the element: a refused one is dropped here.
        if !self.paid && element.is_some() {
            self.paid = pay::<S::Value, A::Error>(self.budget, self.inner.size_hint())?;
        }
        Ok(element)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// Pays for an element of type `T` and, if the sequence says how many follow (`rest`), for
/// them too: bincode's count is exact (the length it read), so a sequence is charged once
/// rather than per element, and a length the budget cannot cover is refused before more is
/// decoded. Without a count, each element pays for itself. Returns whether all are paid for.
///
/// Out of line and given no reference to the sequence, so that the loop over the elements of
/// a byte buffer keeps its counters in registers (a count kept per element, or a `&mut self`
/// here, cost about half the decode time of a `Vec<u8>` again).
#[inline(never)]
fn pay<T, E: de::Error>(budget: &Budget, rest: Option<usize>) -> Result<bool, E> {
    let slot = SEQ_SLOT * size_of::<T>().max(1);
    match rest {
        Some(rest) => {
            budget.charge(rest.saturating_add(1).saturating_mul(slot))?;
            Ok(true)
        }
        None => {
            budget.charge(slot)?;
            Ok(false)
        }
    }
}

/// The entries of a map, charged.
struct Map<'b, A> {
    inner: A,
    budget: &'b Budget,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<'_, A> {
    type Error = A::Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let key = self.inner.next_key_seed(Seed::new(seed, self.budget))?;
        if key.is_some() {
            self.budget.charge(MAP_SLOT * (1 + size_of::<K::Value>()))?;
        }
        Ok(key)
    }

    #[inline]
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        let value = self.inner.next_value_seed(Seed::new(seed, self.budget))?;
        self.budget.charge(MAP_SLOT * size_of::<S::Value>())?;
        Ok(value)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// An enum's variant tag, then its contents.
struct Enum<'b, A> {
    inner: A,
    budget: &'b Budget,
}

impl<'b, 'de, A: EnumAccess<'de>> EnumAccess<'de> for Enum<'b, A> {
    type Error = A::Error;
    type Variant = Variant<'b, A::Variant>;

    #[inline]
    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let budget = self.budget;
        let (tag, inner) = self.inner.variant_seed(Seed::new(seed, budget))?;
        Ok((tag, Variant { inner, budget }))
    }
}

/// An enum variant's contents: fields inside the enum, not charged themselves.
struct Variant<'b, A> {
    inner: A,
    budget: &'b Budget,
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Variant<'_, A> {
    type Error = A::Error;

    #[inline]
    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    #[inline]
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        self.inner
            .newtype_variant_seed(Seed::new(seed, self.budget))
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.inner
            .tuple_variant(len, Vis::new(visitor, self.budget, true))
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.inner
            .struct_variant(fields, Vis::new(visitor, self.budget, true))
    }
}
