//! The embedded broker of `dev` and `demo`: librdkafka's mock cluster, running in this
//! process. It speaks the Kafka protocol on a loopback port, so the rest of govlink talks
//! to it exactly as to a real broker. It keeps everything in memory.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;

/// A running mock cluster. Dropping it stops the cluster.
pub struct EmbeddedBroker {
    bootstrap: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Starts a cluster of `brokers` brokers with `topics` (name, partitions) created.
    pub fn start(brokers: i32, topics: &[(String, i32)]) -> Result<EmbeddedBroker, KafkaError> {
        let topics = topics.to_vec();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        // The mock cluster is not `Send`: it lives on a thread of its own until stopped.
        let thread = std::thread::Builder::new()
            .name("embedded-broker".into())
            .spawn(move || match MockCluster::new(brokers) {
                Ok(cluster) => {
                    // The mock cluster answers no CreateTopics request: create them here.
                    let created = topics.iter().try_for_each(|(name, partitions)| {
                        cluster.create_topic(name, *partitions, brokers.min(3))
                    });
                    let _ = ready_tx.send(created.map(|()| cluster.bootstrap_servers()));
                    let _ = stop_rx.recv();
                    drop(cluster);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| KafkaError::ClientCreation(e.to_string()))?;
        let bootstrap = ready_rx
            .recv()
            .map_err(|_| KafkaError::ClientCreation("embedded broker thread died".into()))??;
        Ok(EmbeddedBroker {
            bootstrap,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The bootstrap address to give clients.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
