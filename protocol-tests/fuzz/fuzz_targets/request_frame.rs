//! Any bytes as one request frame (what follows the 4-byte length prefix), answered by a real
//! broker over a temporary data directory through the same dispatch a connection uses. The
//! broker must answer, or refuse (the connection would close); it must never panic. Answers
//! that wait (acks=-1 fsync, long polls) are bounded by a short timeout.

#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strom::clock::SystemClock;
use strom::{Broker, BrokerConfig, Properties};

struct World {
    runtime: tokio::runtime::Runtime,
    broker: Arc<Broker>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        // scripts/fuzz points this under target/ and removes it afterwards.
        let base = std::env::var_os("STROM_FUZZ_DATA")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("strom-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut props = Properties::default();
        props.set("log.dirs", &dir.to_string_lossy());
        props.set("listeners", "PLAINTEXT://127.0.0.1:0");
        // Keep whatever the fuzzer creates small.
        props.set("log.segment.bytes", "1048576");
        let config = BrokerConfig::from_properties(&props).expect("fuzz broker config");
        let broker = Broker::open(config, Arc::new(SystemClock)).expect("fuzz broker opens");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        World {
            runtime,
            broker: Arc::new(broker),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let world = world();
    let peer: SocketAddr = "127.0.0.1:1".parse().expect("address");
    let frame = Bytes::copy_from_slice(data);
    let broker = world.broker.clone();
    world.runtime.block_on(async move {
        let _ = tokio::time::timeout(
            Duration::from_millis(200),
            strom::server::connection::answer_frame(&broker, frame, peer),
        )
        .await;
    });
});
