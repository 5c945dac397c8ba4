//! A process's audit writer: one hash chain, appended through the shared producer.
//!
//! Numbering, hashing and handing an entry to the producer happen under one lock, so the
//! entries of a chain reach librdkafka in sequence order; records of one key (the chain
//! id) land in that order. The broker's ack is awaited outside the lock, so concurrent
//! lookups share the producer's batches.
//!
//! One task (the acker) awaits the acks in sequence order and moves the chain's
//! acknowledged head: an entry counts as written only when it and every entry before it
//! were acknowledged, so an answer never leaves behind an entry that sits after a gap.
//! When a delivery fails, the chain can no longer be proven gap-free: the chain is
//! marked failed, the entries after it fail their lookups, and the next append starts a
//! new chain whose `ChainStart` names the abandoned chain and its acknowledged head (and,
//! if not even that chain's start was acknowledged, every chain that start named).
//!
//! The acker owns every enqueued record until librdkafka resolves it (within the
//! producer's message timeout), whether or not the lookup is still waiting, so the head
//! never sticks on an entry whose caller gave up. The channel to it is unbounded; what
//! it holds is bounded by the producer's in-flight window, since every record in it was
//! taken by the window and is resolved promptly once delivered.

use crate::telemetry::events::AuditWritten;
use crate::telemetry::metrics::Telemetry;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prost::Message as _;
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::time::{Instant, timeout_at};

use super::AuditError;
use super::chain::{Hash, Tip, new_chain_id};
use super::signing::Signer;
use crate::kafka::{Enqueued, Publisher, Topics};
use crate::proto::audit_body::Kind;
use crate::proto::{AbandonedChain, AuditBody, ChainStart, DataAccess};

/// The longest the acker waits for one record. librdkafka resolves every record within
/// the producer's message timeout; this only guards against a producer that never does.
const ACK_BOUND: Duration = Duration::from_secs(600);
/// How long starting a chain may wait for room in the producer's window.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// The most chains one `ChainStart` declares (about 80 bytes each): an outage of days
/// with a message timeout of seconds. Keeps the start well within a broker's message size.
const MAX_DECLARED: usize = 1000;

/// A process's audit writer. Clones share the chain.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
    /// Where entries written and failed are counted.
    telemetry: Telemetry,
}

struct Inner {
    publisher: Publisher,
    /// `govlink.audit.v1` under the deployment's prefix.
    topic: String,
    /// `govlink.audit-checkpoints.v1` under the deployment's prefix.
    checkpoint_topic: String,
    /// Who writes: the first entry of every chain says so.
    writer: &'static str,
    host: String,
    /// Signs each chain's start and checkpoints; `None` without TLS (`dev`, `demo`).
    signer: Option<Arc<Signer>>,
    /// Held while an entry is numbered, hashed and handed to the producer.
    writing: Mutex<Writing>,
    /// The acknowledged head of the current chain, moved by the acker.
    acked: Arc<watch::Sender<Acked>>,
    /// Enqueued entries, in sequence order, to the acker; `None` once the log is closed:
    /// the acker settles what came before and ends.
    to_acker: mpsc::UnboundedSender<Option<Pending>>,
    /// The acker, joined when the log is closed ([`AuditLog::stop_acker`]); a log never
    /// closed (tests, bench) ends it when its last clone is dropped.
    acker: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The chain being appended to.
struct Writing {
    tip: Tip,
    /// `tip.id`, shared with the acker's bookkeeping.
    chain: Arc<str>,
    /// Set at shutdown, before the closed checkpoint: nothing may follow it.
    closed: bool,
}

/// What the broker acknowledged of the current chain.
#[derive(Debug, Clone)]
pub(super) struct Acked {
    /// The current chain.
    pub(super) chain: Arc<str>,
    /// The last entry acknowledged together with every entry before it.
    pub(super) head: Option<(u64, Hash)>,
    /// An entry was not delivered: nothing after it counts, and the next append starts a
    /// new chain.
    pub(super) failed: bool,
    /// The abandoned chains (and their acknowledged heads) this chain's start declares.
    declares: Vec<Declared>,
}

/// An abandoned chain and its acknowledged head, as a `ChainStart` declares it.
type Declared = (Arc<str>, Option<(u64, Hash)>);

/// What one entry's outcome did to the acknowledged head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    /// Delivered behind an unbroken chain: the head moved to it.
    Counted,
    /// Not delivered: the chain failed.
    Failed,
    /// Of a chain already replaced, or after a failed entry: it never counts.
    Ignored,
}

impl Acked {
    /// A new chain, nothing of it acknowledged yet, whose start declares `declares`.
    fn new(chain: Arc<str>, declares: Vec<Declared>) -> Acked {
        Acked {
            chain,
            head: None,
            failed: false,
            declares,
        }
    }

    /// Takes the outcome of entry `sequence` (hashing to `hash`) of `chain`.
    fn settle(&mut self, chain: &str, sequence: u64, hash: Hash, delivered: bool) -> Settled {
        if *self.chain != *chain || self.failed {
            return Settled::Ignored;
        }
        if delivered {
            self.head = Some((sequence, hash));
            Settled::Counted
        } else {
            self.failed = true;
            Settled::Failed
        }
    }

    /// What the start of the chain replacing this failed one declares: this chain at its
    /// acknowledged head, and, when not even its start was acknowledged, everything that
    /// start declared too.
    ///
    /// A start that failed may or may not have landed, and with it its declarations,
    /// while later entries of its chain may have: so the chain is declared (at no
    /// acknowledged head), and so is every chain its start declared. A start that was
    /// acknowledged put its declarations on the topic: they are not repeated. The list
    /// grows only while starts keep failing (one per producer message timeout) and is
    /// capped at [`MAX_DECLARED`].
    fn to_declare(&self) -> Vec<Declared> {
        let mut declared = if self.head.is_none() {
            self.declares.clone()
        } else {
            Vec::new()
        };
        declared.push((Arc::clone(&self.chain), self.head));
        if declared.len() > MAX_DECLARED {
            // Only the first can have an acknowledged head (the chain before the starts
            // began failing); the ones after it are chains of which nothing was
            // acknowledged, and the oldest of those is dropped.
            let dropped = declared.remove(1);
            tracing::warn!(
                chain = %dropped.0,
                "audit chain no longer declared: too many chain starts failed in a row"
            );
        }
        declared
    }
}

/// An entry handed to the producer, awaiting its ack.
struct Pending {
    chain: Arc<str>,
    sequence: u64,
    hash: Hash,
    enqueued: Enqueued,
    /// The lookup waiting for it (none for a chain's start).
    reply: Option<oneshot::Sender<Result<(), AuditError>>>,
}

/// Who writes a process's chains, as each chain's start says.
pub struct Writer {
    /// What the process is (`resolver`, `cases`, `bench`).
    pub role: &'static str,
    /// The host it runs on (`Settings::host`).
    pub host: String,
    /// Signs each chain's start and checkpoints: a process with TLS. Without (`dev`,
    /// `demo`, tests) the chains are unsigned.
    pub signer: Option<Arc<Signer>>,
}

impl AuditLog {
    /// Starts this process's chain for `writer` (enqueues its ChainStart; does not wait
    /// for the ack), counting its entries in `telemetry`.
    pub async fn start(
        publisher: Publisher,
        topics: &Topics,
        writer: Writer,
        telemetry: Telemetry,
    ) -> Result<AuditLog, AuditError> {
        let Writer {
            role: writer,
            host,
            signer,
        } = writer;
        let tip = Tip::new(new_chain_id());
        let chain: Arc<str> = tip.id.as_str().into();
        let acked = Arc::new(watch::Sender::new(Acked::new(
            Arc::clone(&chain),
            Vec::new(),
        )));
        let (to_acker, pending) = mpsc::unbounded_channel();
        let acker = tokio::spawn(acknowledge(pending, Arc::clone(&acked)));
        let log = AuditLog {
            inner: Arc::new(Inner {
                publisher,
                topic: topics.audit(),
                checkpoint_topic: topics.audit_checkpoints(),
                writer,
                host,
                signer,
                writing: Mutex::new(Writing {
                    tip,
                    chain,
                    closed: false,
                }),
                acked,
                to_acker,
                acker: std::sync::Mutex::new(Some(acker)),
            }),
            telemetry,
        };
        {
            let mut writing = log.inner.writing.lock().await;
            let start = log.chain_start(&[]);
            let deadline = Instant::now() + START_TIMEOUT;
            let (sequence, hash, enqueued) = log.enqueue(&mut writing.tip, start, deadline).await?;
            log.track(&writing.chain, sequence, hash, enqueued, None);
        }
        tracing::info!(chain = log.chain_id(), writer, "audit chain started");
        Ok(log)
    }

    /// Appends one access to the chain and waits (until `deadline`) for the broker's ack.
    pub async fn record(&self, access: DataAccess, deadline: Instant) -> Result<(), AuditError> {
        let written = self.append(access, deadline).await;
        let failure = written.as_ref().err().map(ToString::to_string);
        self.telemetry.emit(AuditWritten {
            failure: failure.as_deref(),
        });
        written
    }

    async fn append(&self, access: DataAccess, deadline: Instant) -> Result<(), AuditError> {
        let (reply, outcome) = oneshot::channel();
        {
            let mut writing = timeout_at(deadline, self.inner.writing.lock())
                .await
                .map_err(|_| AuditError::DeadlineExceeded)?;
            if writing.closed {
                return Err(AuditError::Closed);
            }
            self.restart_if_broken(&mut writing, deadline).await?;
            let (sequence, hash, enqueued) = self
                .enqueue(&mut writing.tip, Kind::Access(access), deadline)
                .await?;
            self.track(&writing.chain, sequence, hash, enqueued, Some(reply));
        }
        match timeout_at(deadline, outcome).await {
            Ok(Ok(verdict)) => verdict,
            // The acker answers every entry it was given; it is gone only with the runtime.
            Ok(Err(_)) => Err(AuditError::Closed),
            Err(_) => Err(AuditError::DeadlineExceeded),
        }
    }

    /// The current chain id (for logs and tests).
    pub fn chain_id(&self) -> String {
        self.inner.acked.borrow().chain.to_string()
    }

    /// The acknowledged head of the current chain.
    pub(super) fn acked(&self) -> Acked {
        self.inner.acked.borrow().clone()
    }

    /// Waits for changes of the acknowledged head.
    pub(super) fn watch_acked(&self) -> watch::Receiver<Acked> {
        self.inner.acked.subscribe()
    }

    pub(super) fn publisher(&self) -> &Publisher {
        &self.inner.publisher
    }

    pub(super) fn checkpoint_topic(&self) -> &str {
        &self.inner.checkpoint_topic
    }

    /// The signer of this log's starts and checkpoints, if it signs.
    pub(super) fn signer(&self) -> Option<&Signer> {
        self.inner.signer.as_deref()
    }

    /// Starts a new chain now if the current one failed, so the abandonment is declared
    /// without waiting for the next lookup.
    pub(super) async fn restart_failed_chain(&self, deadline: Instant) {
        let mut writing = self.inner.writing.lock().await;
        if writing.closed {
            return;
        }
        if let Err(e) = self.restart_if_broken(&mut writing, deadline).await {
            tracing::warn!(error = %e, "cannot start a new audit chain yet");
        }
    }

    /// Closes the log: no entry is appended after this. Returns the chain and the last
    /// sequence handed to the producer, which the closed checkpoint must wait for.
    pub(super) async fn close(&self, deadline: Instant) -> (Arc<str>, u64) {
        let mut writing = self.inner.writing.lock().await;
        // A failed chain is replaced first, so it ends declared rather than open.
        if let Err(e) = self.restart_if_broken(&mut writing, deadline).await {
            tracing::warn!(error = %e, "cannot start a new audit chain before closing");
        }
        writing.closed = true;
        // The tip moved past the chain's start when it was made, so `next` is at least 1.
        (
            Arc::clone(&writing.chain),
            writing.tip.next.saturating_sub(1),
        )
    }

    /// Ends the acker once it settled every entry handed to it, and joins it. Called
    /// after [`AuditLog::close`]: nothing is enqueued after that.
    pub(super) async fn stop_acker(&self) {
        let _ = self.inner.to_acker.send(None);
        let acker = self
            .inner
            .acker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(acker) = acker
            && let Err(e) = acker.await
        {
            tracing::error!(error = %e, "the audit acker failed");
        }
    }

    /// If the current chain failed, starts a new one whose `ChainStart` declares it
    /// abandoned at its acknowledged head (see [`Acked::to_declare`]). The old chain
    /// stays current if the new start cannot be handed to the producer.
    async fn restart_if_broken(
        &self,
        writing: &mut Writing,
        deadline: Instant,
    ) -> Result<(), AuditError> {
        let acked = self.acked();
        if !acked.failed || acked.chain != writing.chain {
            return Ok(());
        }
        let declared = acked.to_declare();
        let mut tip = Tip::new(new_chain_id());
        let start = self.chain_start(&declared);
        let (sequence, hash, enqueued) = self.enqueue(&mut tip, start, deadline).await?;
        let chain: Arc<str> = tip.id.as_str().into();
        tracing::warn!(
            abandoned = %acked.chain,
            acknowledged_up_to = acked.head.map(|(s, _)| s),
            declared = declared.len(),
            chain = %chain,
            "audit chain abandoned after a failed delivery; continuing in a new chain"
        );
        // The acker must see the new chain before its first entry.
        self.inner
            .acked
            .send_replace(Acked::new(Arc::clone(&chain), declared));
        self.track(&chain, sequence, hash, enqueued, None);
        *writing = Writing {
            tip,
            chain,
            closed: false,
        };
        Ok(())
    }

    /// The first entry of a chain of this writer, declaring `abandoned` chains.
    fn chain_start(&self, abandoned: &[Declared]) -> Kind {
        chain_start(self.inner.writer, &self.inner.host, abandoned)
    }

    /// Numbers and hashes an entry carrying `kind` (at now; a start signed) on `tip` and
    /// hands it to the producer. The tip moves only if the producer took it, so a refused
    /// entry leaves no gap.
    async fn enqueue(
        &self,
        tip: &mut Tip,
        kind: Kind,
        deadline: Instant,
    ) -> Result<(u64, Hash, Enqueued), AuditError> {
        let mut body = AuditBody {
            at: Some(SystemTime::now().into()),
            kind: Some(kind),
        };
        if let (Some(signer), Some(Kind::Start(start))) = (&self.inner.signer, &mut body.kind) {
            signer
                .sign_start(&tip.id, body.at.as_ref(), start)
                .map_err(|e| AuditError::Signing(e.to_string()))?;
        }
        let entry = tip.next_entry(&body);
        let enqueued = self
            .inner
            .publisher
            .enqueue(
                &self.inner.topic,
                entry.chain_id.as_bytes(),
                &entry.encode_to_vec(),
                &[],
                deadline,
            )
            .await?;
        tip.advance(&entry);
        Ok((entry.sequence, tip.last_hash, enqueued))
    }

    /// Hands an enqueued entry to the acker.
    fn track(
        &self,
        chain: &Arc<str>,
        sequence: u64,
        hash: Hash,
        enqueued: Enqueued,
        reply: Option<oneshot::Sender<Result<(), AuditError>>>,
    ) {
        let pending = Pending {
            chain: Arc::clone(chain),
            sequence,
            hash,
            enqueued,
            reply,
        };
        if let Err(mpsc::error::SendError(Some(pending))) = self.inner.to_acker.send(Some(pending))
        {
            // Nobody will learn whether it landed: the chain cannot be trusted any more.
            self.inner.acked.send_modify(|a| a.failed = true);
            if let Some(reply) = pending.reply {
                let _ = reply.send(Err(AuditError::Closed));
            }
        }
    }
}

/// The acker: awaits each entry's ack in sequence order and moves the acknowledged head;
/// answers each waiting lookup.
async fn acknowledge(
    mut pending: mpsc::UnboundedReceiver<Option<Pending>>,
    acked: Arc<watch::Sender<Acked>>,
) {
    while let Some(Some(p)) = pending.recv().await {
        let delivered = p.enqueued.ack(Instant::now() + ACK_BOUND).await;
        let mut settled = Settled::Ignored;
        acked.send_if_modified(|a| {
            settled = a.settle(&p.chain, p.sequence, p.hash, delivered.is_ok());
            settled != Settled::Ignored
        });
        let verdict = match delivered {
            Ok(_) if settled == Settled::Counted => Ok(()),
            Ok(_) => Err(AuditError::ChainBroken),
            Err(e) => {
                tracing::warn!(chain = %p.chain, sequence = p.sequence, error = %e, "audit entry not delivered");
                Err(AuditError::Publish(e))
            }
        };
        if let Some(reply) = p.reply {
            // The lookup may have given up waiting; the head moved all the same.
            let _ = reply.send(verdict);
        }
    }
}

/// The first entry of a chain of `writer` on `host`, declaring `abandoned` chains.
fn chain_start(writer: &str, host: &str, abandoned: &[Declared]) -> Kind {
    Kind::Start(ChainStart {
        writer: writer.to_owned(),
        host: host.to_owned(),
        pid: std::process::id(),
        abandoned: abandoned
            .iter()
            .map(|(id, head)| AbandonedChain {
                chain_id: id.to_string(),
                sequence: head.map(|(s, _)| s),
                hash: head.map(|(_, h)| h.to_vec()).unwrap_or_default(),
            })
            .collect(),
        ..ChainStart::default()
    })
}

/// This machine's name, to find a chain's writer in logs; empty if unknown.
#[cfg(test)]
mod tests;
