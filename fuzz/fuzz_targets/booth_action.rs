//! Booth actions as interpreters send them (websocket JSON messages and `POST
//! /api/v1/booth/{action}` bodies) carried out on a booth desk, with sessions coming and going.
//!
//! Input: lines; a line's first byte is the step, `op >> 3` picks the interpreter:
//! `op & 7` = 0..=3 the rest of the line is a websocket message; 4 the rest is `action body` for
//! the API; 5 the interpreter connects (a new session when `op & 0x80`); 6 disconnects;
//! 7 the booth link is revoked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tolk_relay::fuzzing::BoothDesk;

fuzz_target!(|data: &[u8]| {
    let Some(mut desk) = BoothDesk::new() else { return };
    for line in data.split(|b| *b == b'\n') {
        let Some((&op, rest)) = line.split_first() else { continue };
        let who = usize::from(op >> 3);
        match op & 7 {
            0..=3 => {
                if let Ok(text) = std::str::from_utf8(rest) {
                    desk.socket_message(who, text);
                }
            }
            4 => {
                let (action, body) = match rest.iter().position(|b| *b == b' ') {
                    Some(i) => (&rest[..i], &rest[i + 1..]),
                    None => (rest, &[][..]),
                };
                desk.api_call(who, &String::from_utf8_lossy(action), body);
            }
            5 => desk.connect(who, op & 0x80 != 0),
            6 => desk.disconnect(who),
            _ => desk.revoke(who),
        }
    }
});
