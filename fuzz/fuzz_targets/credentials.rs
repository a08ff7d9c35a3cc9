#![no_main]
//! Fuzz the credential parsers (HTTP Basic, login JWT, registration
//! token and URL): no panic, and no JWT accepted that was never signed.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ros::cluster::api::access::fuzz_credentials(data);
});
