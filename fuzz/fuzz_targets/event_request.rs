//! Event requests as organisers send them: the JSON body of `POST /api/v1/events` (`NewEvent`)
//! and of `PATCH /api/v1/events/{id}` (`EventChange`, applied to a sound event), read and
//! checked. Every input is tried as both.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tolk_relay::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::new_event(data);
    fuzzing::event_change(data);
});
