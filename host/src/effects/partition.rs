//! Partitions: a grudge put in force over the campaign's network for a
//! lease. Verified when the mechanism confirms the cut was installed and it
//! actually blocked traffic (dropped packets or held proxy traffic).

use super::{EffectRecord, Effects};
use crate::net::Grudge;
use std::sync::Arc;

impl Effects {
    pub async fn partition(self: &Arc<Self>, grudge: Grudge, ms: u32) -> Result<(), String> {
        if grudge.len() > self.nodes.len() {
            return Err(format!(
                "partition: the grudge has {} rows but this campaign has {} nodes",
                grudge.len(),
                self.nodes.len()
            ));
        }
        for (i, row) in grudge.iter().enumerate() {
            for &j in row {
                self.node(j)?;
                if j as usize == i {
                    return Err(format!(
                        "partition: node {i} cannot hold a grudge against itself"
                    ));
                }
            }
        }
        if grudge.iter().all(Vec::is_empty) {
            return Err("partition: the grudge cuts nothing".into());
        }
        // A new partition replaces the one in force.
        for slot in self.open_leases() {
            if self.records()[slot].kind == "partition" {
                self.end_lease(slot).await;
            }
        }
        let during_burst = self.burst_running();
        let first = grudge.iter().position(|r| !r.is_empty()).unwrap_or(0) as u32;
        let installed = self.net.partition(&grudge).await;
        let start_us = self.now_us();
        let (generation, evidence) = match installed {
            Ok(g) => g,
            Err(e) => {
                // Lift whatever part of it may be in force.
                self.net.heal(None).await;
                return Err(e);
            }
        };
        let verified = true;
        let slot = self.push(EffectRecord {
            kind: "partition",
            node: first,
            detail: format!(
                "grudge {} for {ms} ms ({})",
                serde_json::to_string(&grudge).unwrap_or_default(),
                self.net.mode().as_str()
            ),
            requested_ms: Some(ms as u64),
            start_us,
            end_us: None,
            undone_us: None,
            verified,
            simulated: false,
            evidence,
            during_burst,
        });
        self.remember(slot, |u| u.cut = Some(generation));
        self.schedule_end(slot, start_us, ms);
        Ok(())
    }
}
