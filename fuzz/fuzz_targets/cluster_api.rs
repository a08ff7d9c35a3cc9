#![no_main]
//! Fuzz the cluster API's request decoding (every schema, create and
//! update, plus the agent protocol bodies) with arbitrary bytes.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ros::cluster::api::schema::fuzz_decode(data);
});
