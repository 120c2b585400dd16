//! Hands out producer ids that are unique across restarts: ids are reserved in blocks and the
//! end of the current block is persisted (by the metadata store) before any id of it is used.

use std::sync::Mutex;

pub const BLOCK_SIZE: i64 = 1000;

#[derive(Debug)]
pub struct ProducerIdAllocator {
    state: Mutex<(i64, i64)>,
}

impl ProducerIdAllocator {
    /// `reserved_up_to` is the persisted end of the last block handed out (exclusive).
    pub fn new(reserved_up_to: i64) -> ProducerIdAllocator {
        ProducerIdAllocator {
            state: Mutex::new((reserved_up_to, reserved_up_to)),
        }
    }

    /// Returns the next id, calling `reserve(new_end)` first when a new block is needed; if
    /// that fails, no id is handed out.
    pub fn next<E>(&self, reserve: impl FnOnce(i64) -> Result<(), E>) -> Result<i64, E> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (next, end) = *state;
        if next >= end {
            let new_end = next + BLOCK_SIZE;
            reserve(new_end)?;
            state.1 = new_end;
        }
        state.0 = next + 1;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_a_restart() {
        let a = ProducerIdAllocator::new(0);
        let mut persisted = 0;
        let first = a.next::<()>(|end| {
            persisted = end;
            Ok(())
        });
        assert_eq!(first, Ok(0));
        assert_eq!(a.next::<()>(|_| unreachable!()), Ok(1));
        let b = ProducerIdAllocator::new(persisted);
        assert_eq!(b.next::<()>(|_| Ok(())), Ok(BLOCK_SIZE));
        assert_eq!(a.next::<&str>(|_| Err("x")).ok(), Some(2));
    }
}
