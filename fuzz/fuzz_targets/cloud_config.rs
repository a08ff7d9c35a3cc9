#![no_main]
//! Fuzz the cloud-config parser, validator, merge, YAML writer and the
//! kernel command-line and user-data decoders with arbitrary bytes.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ros::config::fuzz_one(data);
});
