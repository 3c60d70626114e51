//! End-to-end tests: real chaos-host runs against the real reference system
//! (examples/quorum-kv) with real plugins. No mocks of the system under test.
//!
//! The plugins built from source come from the test-components
//! dev-dependency, whose build script compiles them (it needs the
//! wasm32-wasip2 target: `rustup target add wasm32-wasip2`).

mod util;

// Campaign runs: correct system passes, buggy system is caught.
mod campaigns;
mod clients;
// Per-cycle isolation, process cleanup.
mod isolation;
mod nats;
// Refusals: grants, bad campaigns, nodes that never come up.
mod refusals;
// The four built-in faults in both network modes.
mod faults;
// Link faults: latency, loss, bandwidth, reset, with measured evidence.
mod links;
// Effects never outlive chaos-host: SIGKILL + cleanup, Ctrl-C, traps.
mod recovery;
// Clock skew reaches the node; unappliable skews are simulated.
mod clock;
// Sound verdicts: unobserved skews simulated, bypassed partitions unverified.
mod proofs;
// The false-green suite: every case once green that must not be (vacuous,
// unasked death, hung node, one lost write, unprobed skew, bypasses, a cut
// never crossed or lapsing, link and disk faults never met).
mod false_green;
// Hostile plugins: each contained, effects undone, campaign continues.
mod hostile;
// Sharing plugins: sha256 pins, --plugin-dir.
mod sharing;
// A small-backlog Python store in proxy and netns modes.
mod small_backlog;
// Contract versions side by side: 0.1.0, 0.1.1, 0.2.0 and 0.3.0 plugins together.
mod contracts;
// Built-in plugins by name, from an installed binary; `plugin list`.
mod builtins;
// Plugins as OCI artifacts: push, pull, chaos.lock, cache, refusals.
mod oci;
// Plugins from `chaos-host new-plugin`: build and run with the SDK alone.
mod scaffold;
// A third-party plugin with its own campaign.
mod third_party;
// Native plugins: opt-in, flagged unsandboxed, grants still apply.
mod native;
// Reports: report.html, junit.xml, `chaos-host report`, headless browser.
mod reports;
// Real systems: etcd 3.4 (leader kill and restart, power failure, netns
// partition, honest clock skew).
mod etcd;
// Real systems: ai-memory 0.6.4, star and mesh layouts, quorum probes.
mod ai_memory;
// chaos-host SIGKILLed at random points, then --resume.
mod resume;
// Bad input: the campaign corpus, unreadable plugins, broken systems.
mod bad_input;
// Sound verdicts: vacuous runs, unasked deaths, silent nodes, one lost
// write, bad figures, replay.
mod verdicts;
// Beyond one cycle at a time: --parallel, --shard, merge.
mod scale;
// Restart: nodes killed and started again on the same data dir.
mod restart;
// Disk faults through the FUSE layer; power failures; cleanup of mounts.
mod disk;
// Composed classes: several fault plugins on one timeline.
mod composed;
// Histories: history.jsonl, reads during the cycle, the history interface,
// fuel-bounded checkers, EDN export, stale reads.
mod histories;
// The built-in checkers (set_full, linearizable) on real cycles.
mod checkers;
// Nodes on remote hosts over SSH: sshd in network namespaces.
mod remote;
