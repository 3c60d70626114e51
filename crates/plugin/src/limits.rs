//! What one plugin instance may allocate, summed over the whole instance.
//!
//! wasmtime's own [`wasmtime::StoreLimits`] is not enough: its
//! `memory_size` and `table_elements` bound each linear memory and each
//! table on its own. A component is many core modules, each of which may
//! bring its own memory, so a plugin with three 40 MiB memories passes a
//! 64 MiB per-memory cap while holding 120 MiB. [`InstanceLimits`] keeps the
//! running total of every memory (and every table) of the store and refuses
//! the creation or growth that would take the total past the cap.
//!
//! A refusal is an error, not a quiet `memory.grow` of -1: the call traps
//! with a reason naming the limit, where a refused growth would mostly end
//! in an allocator's abort that says nothing about why.

use wasmtime::ResourceLimiter;

/// Bytes all linear memories of one plugin instance may hold together.
pub const MEMORY_LIMIT: usize = 64 << 20;
/// Table elements all tables of one plugin instance may hold together.
pub const TABLE_ELEMENTS_LIMIT: usize = 100_000;
/// Core instances one plugin may create (a Rust component has a handful).
pub const INSTANCES_LIMIT: usize = 16;
/// Linear memories one plugin may create.
pub const MEMORIES_LIMIT: usize = 16;
/// Tables one plugin may create.
pub const TABLES_LIMIT: usize = 16;

/// A creation or growth refused by [`InstanceLimits`]; the trap it raises
/// carries this as its reason.
#[derive(Debug, thiserror::Error)]
pub enum LimitExceeded {
    #[error(
        "memory limit: the plugin's memories would hold {} MiB together, over the {} MiB cap per plugin instance",
        .total.div_ceil(1 << 20),
        MEMORY_LIMIT >> 20
    )]
    Memory { total: usize },
    #[error(
        "table limit: the plugin's tables would hold {total} elements together, over the {TABLE_ELEMENTS_LIMIT} cap per plugin instance"
    )]
    Table { total: usize },
}

/// A [`ResourceLimiter`] over the sum of a store's memories and tables.
///
/// Memories and tables only grow while a store lives (they are freed with
/// it), so each approved creation or growth adds `desired - current` to the
/// total for good; a growth wasmtime then fails to carry out gives its
/// share back.
#[derive(Debug, Default)]
pub struct InstanceLimits {
    memory: Total,
    tables: Total,
}

/// One resource summed over the instance: memory bytes or table elements.
#[derive(Debug, Default)]
struct Total {
    held: usize,
    /// The last approved growth, returned if wasmtime then fails it.
    pending: usize,
}

impl Total {
    /// Approve growing one member from `current` to `desired` when the sum
    /// stays within `cap`; else the sum it would have reached.
    fn grow(&mut self, current: usize, desired: usize, cap: usize) -> Result<(), usize> {
        let added = desired.saturating_sub(current);
        let total = self.held.saturating_add(added);
        if total > cap {
            return Err(total);
        }
        self.held = total;
        self.pending = added;
        Ok(())
    }

    /// The approved growth did not happen: give its share back.
    fn failed(&mut self) {
        self.held -= std::mem::take(&mut self.pending);
    }
}

#[cfg(test)]
impl InstanceLimits {
    /// Bytes of linear memory the instance holds now.
    pub fn memory_bytes(&self) -> usize {
        self.memory.held
    }
}

impl ResourceLimiter for InstanceLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.memory
            .grow(current, desired, MEMORY_LIMIT)
            .map_err(|total| LimitExceeded::Memory { total })?;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory.failed();
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.tables
            .grow(current, desired, TABLE_ELEMENTS_LIMIT)
            .map_err(|total| LimitExceeded::Table { total })?;
        Ok(true)
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.tables.failed();
        Ok(())
    }

    fn instances(&self) -> usize {
        INSTANCES_LIMIT
    }

    fn memories(&self) -> usize {
        MEMORIES_LIMIT
    }

    fn tables(&self) -> usize {
        TABLES_LIMIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn memories_are_summed_not_capped_one_by_one() {
        let mut l = InstanceLimits::default();
        // Three new memories of 30 MiB: each under the cap, not together.
        assert!(l.memory_growing(0, 30 * MIB, None).unwrap());
        assert!(l.memory_growing(0, 30 * MIB, None).unwrap());
        let e = l.memory_growing(0, 30 * MIB, None).unwrap_err();
        assert!(format!("{e}").contains("memory limit"), "{e}");
        assert_eq!(l.memory_bytes(), 60 * MIB);
    }

    #[test]
    fn growth_counts_only_what_is_added() {
        let mut l = InstanceLimits::default();
        assert!(l.memory_growing(0, MIB, None).unwrap());
        assert!(l.memory_growing(MIB, 64 * MIB, None).unwrap());
        assert_eq!(l.memory_bytes(), MEMORY_LIMIT);
        assert!(l.memory_growing(0, 64 * 1024, None).is_err());
    }

    #[test]
    fn a_failed_growth_gives_its_share_back() {
        let mut l = InstanceLimits::default();
        assert!(l.memory_growing(0, 60 * MIB, None).unwrap());
        l.memory_grow_failed(wasmtime::Error::msg("mmap failed"))
            .unwrap();
        assert_eq!(l.memory_bytes(), 0);
        assert!(l.memory_growing(0, 60 * MIB, None).unwrap());
    }

    #[test]
    fn tables_are_summed() {
        let mut l = InstanceLimits::default();
        assert!(l.table_growing(0, 60_000, None).unwrap());
        assert!(l.table_growing(0, 60_000, None).is_err());
    }
}
