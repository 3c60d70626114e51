//! A client component that misbehaves on purpose in `add`, for the hostile
//! suite; `ready` and `setup` answer ok and `read` holds nothing. `mode`:
//! - `spin`: loop forever (fuel, then the wall-clock deadline);
//! - `hoard`: allocate without bound (the memory cap);
//! - `hang`: sleep past any deadline (an operation never answered);
//! - `panic`: panic (a trap).

use chaos_sdk::client::{Client, ClientConfig, ClientInfo, Outcome};
use std::cell::RefCell;

struct Misbehave;

thread_local! {
    static MODE: RefCell<String> = const { RefCell::new(String::new()) };
}

impl Client for Misbehave {
    fn describe() -> ClientInfo {
        let mut info = chaos_sdk::client::info(
            "client_misbehave",
            env!("CARGO_PKG_VERSION"),
            "misbehaves on purpose in add (tests only)",
        );
        info.params.push(chaos_sdk::ParamSpec {
            name: "mode".into(),
            kind: chaos_sdk::ParamType::Text,
            default_value: "spin".into(),
            doc: "spin, hoard, hang or panic".into(),
        });
        info
    }

    fn open(config: ClientConfig) -> Result<(), String> {
        let mode = config
            .params
            .iter()
            .find(|(k, _)| k == "mode")
            .map_or("spin".to_string(), |(_, v)| v.clone());
        MODE.with(|m| *m.borrow_mut() = mode);
        Ok(())
    }

    fn ready(_node: u32) -> Outcome {
        Outcome::Ok
    }

    fn setup() -> Outcome {
        Outcome::Ok
    }

    fn add(_node: u32, _id: String) -> Outcome {
        match MODE.with(|m| m.borrow().clone()).as_str() {
            "spin" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "hoard" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![0xAB; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "hang" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Outcome::Ok
            }
            _ => panic!("client_misbehave: panicking in add"),
        }
    }

    fn read(_node: u32) -> Result<Vec<String>, Outcome> {
        Ok(vec![])
    }
}

chaos_sdk::export_client!(Misbehave);
