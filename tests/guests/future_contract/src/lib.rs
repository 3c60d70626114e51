//! A plugin built against a contract version this chaos-host does not
//! accept (chaos:plugin@9.0.0), for the version-refusal test. Its interface
//! is deliberately minimal: the host must refuse it on the version alone.

wit_bindgen::generate!({
    inline: "
        package chaos:plugin@9.0.0;
        interface fault {
            describe: func() -> string;
        }
        world newer {
            export fault;
        }
    ",
    world: "newer",
});

struct Future;

impl exports::chaos::plugin::fault::Guest for Future {
    fn describe() -> String {
        "from the future".into()
    }
}

export!(Future);
