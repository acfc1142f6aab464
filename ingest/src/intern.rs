//! String interning for dictionary-encoded columns.

use std::sync::Arc;

use arrow::array::{ArrayRef, DictionaryArray, Int32Array, StringArray};
use arrow::datatypes::Int32Type;
use hashbrown::HashMap;

/// Maps strings to dense dictionary keys, in first-seen order.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    ids: HashMap<Box<str>, i32>,
    values: Vec<Box<str>>,
    /// The key returned last: runs of one value (a thread's name, an address) skip the hash.
    last: Option<i32>,
}

impl Interner {
    /// Key of `s`, adding it when new.
    pub(crate) fn intern(&mut self, s: &str) -> i32 {
        if let Some(last) = self.last {
            if self.values.get(last as usize).is_some_and(|v| **v == *s) {
                return last;
            }
        }
        if let Some(&id) = self.ids.get(s) {
            self.last = Some(id);
            return id;
        }
        let id = i32::try_from(self.values.len()).unwrap_or(i32::MAX);
        self.values.push(s.into());
        self.ids.insert(s.into(), id);
        self.last = Some(id);
        id
    }

    /// Look up without adding.
    pub(crate) fn get(&self, s: &str) -> Option<i32> {
        self.ids.get(s).copied()
    }

    /// Build a dictionary array from `keys` over the interned values.
    pub(crate) fn dictionary(
        &self,
        keys: Int32Array,
    ) -> Result<ArrayRef, arrow::error::ArrowError> {
        let values = StringArray::from_iter_values(self.values.iter().map(|v| &**v));
        Ok(Arc::new(DictionaryArray::<Int32Type>::try_new(
            keys,
            Arc::new(values),
        )?))
    }
}
