//! The `strom` binary: zero-config start, or Kafka-style configuration.

use std::path::PathBuf;

use clap::Parser;
use strom::{BrokerConfig, Properties};

/// A Kafka-wire-protocol-compatible broker.
#[derive(Debug, Parser)]
#[command(name = "strom", version, after_help = AFTER_HELP)]
struct Args {
    /// A server.properties-style file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The same, given positionally as `kafka-server-start.sh server.properties` takes it.
    #[arg(value_name = "FILE", conflicts_with = "config")]
    config_file: Option<PathBuf>,
    /// Sets one property, e.g. `--override log.dirs=/var/lib/strom`. Repeatable.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

const AFTER_HELP: &str = "\
Configuration uses Apache Kafka's property names. Sources, later ones win:
  1. Kafka's defaults
  2. the FILE (server.properties style: key=value lines)
  3. environment variables as Kafka's docker images read them: KAFKA_LOG_DIRS -> log.dirs
     (_ is '.', __ is '_', ___ is '-'); KAFKA_CFG_* as Bitnami's; CLUSTER_ID
  4. --override key=value
Errors name the property and where its value came from.

Defaults that matter first:
  listeners            PLAINTEXT://:9092 (every interface, IPv4 and IPv6)
  log.dirs             strom-data (relative to the directory strom is started in)
  strom.http.listener  http://:9644 (/metrics in Prometheus format, /health)
  strom.acks.all.fsync true (acks=all is answered after the records are fsynced)

Environment:
  STROM_LOG   log filter, e.g. STROM_LOG=debug or STROM_LOG=strom::api=debug (default info)

Also:
  strom healthcheck [http://host:port]   exits 0 when /health answers 200 (for compose files)";

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STROM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "healthcheck")
    {
        return healthcheck(std::env::args().nth(2));
    }
    let args = Args::parse();
    match start(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once: a cause the message above it already quotes (as
/// "storage error: {0}" quotes its I/O error) is not repeated.
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn start(args: Args) -> anyhow::Result<()> {
    let mut props = Properties::default();
    if let Some(path) = args.config.or(args.config_file) {
        props.load_file(&path)?;
    }
    props.load_env(std::env::vars());
    for text in &args.overrides {
        props.apply_override(text)?;
    }
    let config = BrokerConfig::from_properties(&props).map_err(|e| props.explain(e))?;
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("strom")
        .build()?;
    runtime.block_on(strom::run(config, shutdown_signal()))
}

/// `strom healthcheck [http://host:port]`: exits 0 when the broker's `/health` answers 200,
/// 1 otherwise, for a compose `healthcheck:` without a shell. The address defaults to
/// `strom.http.listener` from the environment (`KAFKA_STROM_HTTP_LISTENER`), the same the
/// broker in this container was given; a wildcard host means this machine.
fn healthcheck(url: Option<String>) -> std::process::ExitCode {
    let listener = match url {
        Some(url) => strom::config::http_listener(Some(&url)),
        None => {
            let mut props = Properties::default();
            props.load_env(std::env::vars());
            strom::config::http_listener(props.get("strom.http.listener"))
        }
    };
    let listener = match listener {
        Ok(Some(l)) => l,
        Ok(None) => {
            eprintln!("strom healthcheck: strom.http.listener is off; nothing to ask");
            return std::process::ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("strom healthcheck: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let host = if listener.has_wildcard_host() {
        "127.0.0.1"
    } else {
        listener.host.as_str()
    };
    match strom::server::http::probe(host, listener.port, std::time::Duration::from_secs(3)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strom healthcheck: unhealthy: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Every segment keeps files open, so many partitions need many descriptors: raise the soft
/// limit to the hard one, as Kafka's docs ask operators to do by hand.
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::info!(open_files = ?limit.maximum, "raised the open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
