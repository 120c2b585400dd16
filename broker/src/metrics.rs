//! Broker metrics, named after Kafka's own MBeans as the Prometheus JMX exporter renders them
//! (lower-cased `kafka_<domain>_<type>_<name>`, counters with `_total`), so that dashboards
//! built for Kafka need little change. `docs/METRICS.md` lists every name.
//!
//! A leaf: the other rooms never import it; `api/` and `server/` count, and the HTTP endpoint
//! (`server/http.rs`) renders. Gauges that mirror state (log sizes, group count) are filled in
//! at scrape time from the `Broker` rather than kept up to date on every change.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub request: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: String,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~65 s: a fetch long poll or an fsync wait ends up in the upper buckets.
    Histogram::new(exponential_buckets(0.25, 2.0, 19))
}

/// Every metric the broker exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=*` (and the all-topics
    /// total, which Prometheus sums instead).
    pub messages_in: Family<TopicLabels, Counter>,
    /// `BytesInPerSec`: record bytes appended.
    pub bytes_in: Family<TopicLabels, Counter>,
    /// `BytesOutPerSec`: record bytes served to consumers.
    pub bytes_out: Family<TopicLabels, Counter>,
    /// `kafka.network:type=RequestMetrics,name=RequestsPerSec,request=*`.
    pub requests: Family<RequestLabels, Counter>,
    /// `kafka.network:type=RequestMetrics,name=TotalTimeMs,request=*`, as a histogram in ms
    /// from dispatch to the response being ready.
    pub request_time_ms: Family<RequestLabels, Histogram, fn() -> Histogram>,
    /// `kafka.server:type=socket-server-metrics,listener=*` `connection-count`.
    pub connections: Family<ListenerLabels, Gauge>,
    /// `kafka.log:type=Log,name=Size,topic=*,partition=*`, filled at scrape time.
    pub log_size: Family<PartitionLabels, Gauge>,
    /// `kafka.coordinator.group:type=GroupMetadataManager,name=NumGroups`, filled at scrape time.
    pub groups: Gauge,
    /// `kafka.server:type=KafkaServer,name=BrokerState` is 3 (RUNNING) once requests are served.
    pub broker_state: Gauge,
    /// Serialises scrapes, which clear and refill the scrape-time gauges.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::default();
        let messages_in = Family::<TopicLabels, Counter>::default();
        let bytes_in = Family::<TopicLabels, Counter>::default();
        let bytes_out = Family::<TopicLabels, Counter>::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let request_time_ms =
            Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let connections = Family::<ListenerLabels, Gauge>::default();
        let log_size = Family::<PartitionLabels, Gauge>::default();
        let groups = Gauge::default();
        let broker_state = Gauge::default();
        registry.register(
            "kafka_server_brokertopicmetrics_messagesin",
            "Records appended, per topic (Kafka's MessagesInPerSec count)",
            messages_in.clone(),
        );
        registry.register(
            "kafka_server_brokertopicmetrics_bytesin",
            "Record bytes appended, per topic (Kafka's BytesInPerSec count)",
            bytes_in.clone(),
        );
        registry.register(
            "kafka_server_brokertopicmetrics_bytesout",
            "Record bytes sent to consumers, per topic (Kafka's BytesOutPerSec count)",
            bytes_out.clone(),
        );
        registry.register(
            "kafka_network_requestmetrics_requests",
            "Requests handled, per API (Kafka's RequestsPerSec count)",
            requests.clone(),
        );
        registry.register(
            "kafka_network_requestmetrics_totaltimems",
            "Milliseconds from dispatch to a ready response, per API (Kafka's TotalTimeMs)",
            request_time_ms.clone(),
        );
        registry.register(
            "kafka_server_socket_server_metrics_connection_count",
            "Open client connections, per listener",
            connections.clone(),
        );
        registry.register(
            "kafka_log_log_size",
            "Bytes of a partition's log segments (Kafka's Log Size)",
            log_size.clone(),
        );
        registry.register(
            "kafka_coordinator_group_groupmetadatamanager_numgroups",
            "Consumer groups the coordinator knows (Kafka's NumGroups)",
            groups.clone(),
        );
        registry.register(
            "kafka_server_kafkaserver_brokerstate",
            "3 (RUNNING) once the broker serves requests, as Kafka's BrokerState",
            broker_state.clone(),
        );
        Metrics {
            registry,
            messages_in,
            bytes_in,
            bytes_out,
            requests,
            request_time_ms,
            connections,
            log_size,
            groups,
            broker_state,
            scrape: Mutex::new(()),
        }
    }
}

impl Metrics {
    pub fn record_append(&self, topic: &str, records: u64, bytes: u64) {
        let labels = TopicLabels {
            topic: topic.to_string(),
        };
        self.messages_in.get_or_create(&labels).inc_by(records);
        self.bytes_in.get_or_create(&labels).inc_by(bytes);
    }

    pub fn record_fetch(&self, topic: &str, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.bytes_out
            .get_or_create(&TopicLabels {
                topic: topic.to_string(),
            })
            .inc_by(bytes);
    }

    pub fn connection_opened(&self, listener: &str) {
        self.connection_gauge(listener).inc();
    }

    pub fn connection_closed(&self, listener: &str) {
        self.connection_gauge(listener).dec();
    }

    fn connection_gauge(&self, listener: &str) -> Gauge {
        self.connections.get_or_create_owned(&ListenerLabels {
            listener: listener.to_string(),
        })
    }

    /// Renders the OpenMetrics text format (which Prometheus reads), after `refresh` has set
    /// the scrape-time gauges: it gets the log-size family cleared, to fill with the
    /// partitions that exist now, and the group gauge.
    pub fn render(&self, refresh: impl FnOnce(&Family<PartitionLabels, Gauge>, &Gauge)) -> String {
        let _scrape = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.log_size.clear();
        refresh(&self.log_size, &self.groups);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_kafka_style_names() {
        let metrics = Metrics::default();
        metrics.record_append("orders", 3, 120);
        metrics.record_fetch("orders", 120);
        metrics.connection_opened("PLAINTEXT");
        let text = metrics.render(|sizes, groups| {
            sizes
                .get_or_create(&PartitionLabels {
                    topic: "orders".into(),
                    partition: "0".into(),
                })
                .set(4096);
            groups.set(2);
        });
        for line in [
            "kafka_server_brokertopicmetrics_messagesin_total{topic=\"orders\"} 3",
            "kafka_server_brokertopicmetrics_bytesin_total{topic=\"orders\"} 120",
            "kafka_server_brokertopicmetrics_bytesout_total{topic=\"orders\"} 120",
            "kafka_server_socket_server_metrics_connection_count{listener=\"PLAINTEXT\"} 1",
            "kafka_log_log_size{topic=\"orders\",partition=\"0\"} 4096",
            "kafka_coordinator_group_groupmetadatamanager_numgroups 2",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
