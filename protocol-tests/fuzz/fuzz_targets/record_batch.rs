//! Any bytes as a produced RecordBatch: validation must accept or refuse, never panic; what it
//! accepts must decode (the broker decodes accepted batches for compacted topics and
//! recompression) and must pass the recovery-time check too.

#![no_main]

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use libfuzzer_sys::fuzz_target;
use strom::log::batch;

fuzz_target!(|data: &[u8]| {
    let stored = batch::validate_stored(data);
    if batch::validate(data).is_ok() {
        assert!(
            stored.is_ok(),
            "a batch valid for produce must be valid at recovery"
        );
        let mut buf = Bytes::copy_from_slice(data);
        let _ = RecordBatchDecoder::decode(&mut buf);
    }
});
