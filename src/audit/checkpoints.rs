//! Checkpoints: the writer's acknowledged head, published on
//! `govlink.audit-checkpoints.v1` (key: chain id) every interval when it moved, and a
//! final closed one at shutdown after the last entry was acknowledged. A chain that ends
//! before its latest checkpoint was cut off (docs/decisions.md, "The audit trail").

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prost::Message as _;
use tokio::time::{Instant, MissedTickBehavior, timeout_at};
use tokio_util::sync::CancellationToken;

use super::chain::Hash;
use super::writer::AuditLog;
use crate::proto::AuditCheckpoint;

/// How long one checkpoint publish may take.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long closing waits for the entries still in flight to be acknowledged. librdkafka
/// resolves each within the producer's message timeout; an app's grace period bounds the
/// whole shutdown anyway.
const CLOSE_WAIT: Duration = Duration::from_secs(60);

impl AuditLog {
    /// Writes checkpoints every `interval` until `shutdown`, then a final closed one.
    pub async fn run_checkpoints(
        self,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> Result<(), String> {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The first tick is immediate; there is nothing acknowledged to write yet.
        ticks.tick().await;
        let mut written: Option<(Arc<str>, u64)> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            self.restart_failed_chain(Instant::now() + PUBLISH_TIMEOUT)
                .await;
            let acked = self.acked();
            let Some((sequence, hash)) = acked.head else {
                continue;
            };
            if written
                .as_ref()
                .is_some_and(|(c, s)| *c == acked.chain && *s == sequence)
            {
                continue;
            }
            match self.checkpoint(&acked.chain, sequence, hash, false).await {
                Ok(()) => written = Some((acked.chain, sequence)),
                // The next tick tries again with the head as it is then.
                Err(e) => tracing::warn!(error = %e, "audit checkpoint not written"),
            }
        }
        let closed = self.close_with_checkpoint().await;
        self.stop_acker().await;
        closed
    }

    /// Closes the log, waits until its last entry was acknowledged, and writes the
    /// closed checkpoint. A chain whose last entries failed is left open (and says so).
    async fn close_with_checkpoint(&self) -> Result<(), String> {
        let (chain, last) = self.close(Instant::now() + PUBLISH_TIMEOUT).await;
        let mut acked = self.watch_acked();
        let head = {
            // The borrowed value must be gone before the next await.
            let settled = timeout_at(
                Instant::now() + CLOSE_WAIT,
                acked.wait_for(|a| {
                    a.chain != chain || a.failed || a.head.is_some_and(|(s, _)| s >= last)
                }),
            )
            .await;
            match settled {
                Ok(Ok(a)) if a.chain == chain && !a.failed => a.head,
                _ => None,
            }
        };
        let Some((sequence, hash)) = head.filter(|(s, _)| *s == last) else {
            tracing::warn!(
                chain = %chain,
                "audit chain left open: its last entries were not all acknowledged"
            );
            return Ok(());
        };
        self.checkpoint(&chain, sequence, hash, true)
            .await
            .map_err(|e| format!("closed audit checkpoint not written: {e}"))?;
        tracing::info!(chain = %chain, sequence, "audit chain closed");
        Ok(())
    }

    /// Publishes one checkpoint (signed, if the log signs) and waits for its ack.
    async fn checkpoint(
        &self,
        chain: &str,
        sequence: u64,
        hash: Hash,
        closed: bool,
    ) -> Result<(), super::AuditError> {
        let mut checkpoint = AuditCheckpoint {
            chain_id: chain.to_owned(),
            sequence,
            hash: hash.to_vec(),
            at: Some(SystemTime::now().into()),
            closed,
            signature: Vec::new(),
        };
        if let Some(signer) = self.signer() {
            // Unsigned, a signed chain's checkpoint would be ignored by every reader.
            signer
                .sign_checkpoint(&mut checkpoint)
                .map_err(|e| super::AuditError::Signing(e.to_string()))?;
        }
        self.publisher()
            .publish(
                self.checkpoint_topic(),
                chain.as_bytes(),
                &checkpoint.encode_to_vec(),
                &[],
                Instant::now() + PUBLISH_TIMEOUT,
            )
            .await?;
        Ok(())
    }
}
