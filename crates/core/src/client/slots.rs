//! What the driver and component clients share: one slot per client
//! process (its driver or instance, one operation in flight), and the
//! bounded list of what went wrong with the client itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Problems kept per cycle (each names its process and operation).
const MAX_PROBLEMS: usize = 20;

type Slot<T> = Arc<tokio::sync::Mutex<Option<T>>>;

/// Each client process's driver or instance, opened at its first
/// operation; the slot's lock is its one operation in flight.
pub struct Slots<T>(Mutex<HashMap<u32, Slot<T>>>);

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<T> Slots<T> {
    /// `process`'s slot, locked for one operation.
    pub async fn lock(&self, process: u32) -> tokio::sync::OwnedMutexGuard<Option<T>> {
        let slot = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(process)
            .or_default()
            .clone();
        slot.lock_owned().await
    }

    /// Every process's driver or instance, taken out (the cycle's end).
    pub async fn drain(&self) -> Vec<T> {
        let slots: Vec<Slot<T>> = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect();
        let mut out = Vec::new();
        for s in slots {
            out.extend(s.lock().await.take());
        }
        out
    }
}

/// What went wrong with the client itself this cycle: the first
/// [`MAX_PROBLEMS`] distinct ones.
#[derive(Default)]
pub struct Problems(Mutex<Vec<String>>);

impl Problems {
    pub fn add(&self, e: String) {
        let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if p.len() < MAX_PROBLEMS && !p.contains(&e) {
            p.push(e);
        }
    }

    pub fn list(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
