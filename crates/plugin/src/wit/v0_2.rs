//! Contract 0.2: `chaos:plugin@0.2.x`, bound from `wit/deps/chaos-plugin@0.2.0`,
//! frozen: the crash, network and history work landed here. Its worlds are
//! 0.3.0's, so its conversions lose nothing.

use chaos_model::contract::Version;

pub const MIN: Version = Version::from_static("0.2.0");
pub const MAX: Version = Version::from_static("0.2.0");

super::glue::bindings!(
    "../../wit/deps/chaos-plugin@0.2.0",
    with: { "chaos:plugin/history.ops": crate::history::OpsCursor },
);

super::glue::since_0_2!();
