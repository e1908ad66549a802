//! SDP offers through the shard core's join (str0m parses them), as WHEP (a listener), WHIP (the
//! floor) and a booth send them: accepted or refused, never a panic.
//!
//! Input: the offer's text (the HTTP edge takes any UTF-8 body that starts with `v=0`); its
//! length picks the join (modulo 3) and the event's mode (modulo 2: mix mode when odd).
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use tolk_fuzz::{core, flush, lang, layout};
use tolk_relay::ids::{InterpreterId, SessionId};
use tolk_relay::net::Join;

fuzz_target!(|data: &[u8]| {
    let Ok(offer) = std::str::from_utf8(data) else { return };
    let mut core = core(2);
    let now = Instant::now();
    let layout = layout(data.len() % 2 == 1);
    let join = match data.len() % 3 {
        0 => Join::Listen { language: lang("fr") },
        1 => Join::Floor { input: 1 },
        _ => {
            Join::Booth { interpreter: InterpreterId(1), input: 2, listen_to: lang("de"), booth: lang("fr") }
        }
    };
    if let Ok(joined) = core.join(now, layout, SessionId::generate(), join, offer) {
        assert!(joined.answer.starts_with("v=0"), "an answer is SDP");
    }
    core.on_timeout(now);
    flush(&mut core, now);
});
