//! Reading topics the way the operator tools need: partition watermarks, a reader that
//! knows when it reached the end, and a consumer group's committed offsets, read and
//! written without joining the group.
//!
//! "The end" is where the broker says a partition ends, then nothing more for a second:
//! some brokers (Tansu) report a high watermark short of the end after a producer batch of
//! several records, so the watermark alone would stop early. The same brokers cannot start
//! a fetch inside such a batch (they serve the next batch, or nothing): a partition asked
//! to start at an offset whose first message comes later, or that delivers nothing, is
//! read again from its beginning, and what comes before the offset is dropped.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::{Instant, timeout};

use crate::kafka::Brokers;

/// How long a broker request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Nothing more for this long once every partition reached its reported end: the end.
const QUIET: Duration = Duration::from_secs(1);
/// A partition that delivered nothing for this long since it was asked to start at an
/// offset past its beginning is read again from its beginning.
const STALL: Duration = Duration::from_secs(3);
/// Nothing at all for this long while partitions are short of their reported end: the
/// broker stopped delivering.
const GIVE_UP: Duration = Duration::from_secs(20);

/// A partition's low and high watermarks: its first offset and the offset after its last.
pub type Watermarks = BTreeMap<i32, (i64, i64)>;

/// Where a [`Reader`] stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// At the end: the reported ends reached, then nothing more for a while.
    End,
    /// At the ends reported when it was opened: what was appended since is left out. For
    /// a reader whose work appends to the topic (a replay whose letters come back), which
    /// would otherwise never end. A broker that under-reports the ends leaves the rest for
    /// the next reader.
    Opened,
    /// Never: it waits for new messages.
    Follow,
}

/// Why a topic could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The broker refused or failed a request.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// Partitions stayed short of the end the broker reported.
    #[error(
        "{topic}: the broker stopped delivering before the end it reports \
         (partitions {partitions:?}, {GIVE_UP:?} without a message)"
    )]
    Stalled {
        /// The topic.
        topic: String,
        /// The partitions short of their end.
        partitions: Vec<i32>,
    },
}

/// The watermarks of every partition of each of `topics` (`None`: the broker does not
/// have the topic).
pub async fn watermarks(
    brokers: &Brokers,
    topics: Vec<String>,
) -> Result<BTreeMap<String, Option<Watermarks>>, KafkaError> {
    let brokers = brokers.clone();
    // Metadata and watermark requests block on the broker: keep them off the async workers.
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer =
            crate::kafka::client_config(&brokers, "govlink-ops").create()?;
        let metadata = consumer.fetch_metadata(None, REQUEST_TIMEOUT)?;
        let mut all = BTreeMap::new();
        for name in topics {
            let found = metadata
                .topics()
                .iter()
                .find(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty());
            let marks = match found {
                Some(topic) => {
                    let mut marks = Watermarks::new();
                    for p in topic.partitions() {
                        let (low, high) =
                            consumer.fetch_watermarks(&name, p.id(), REQUEST_TIMEOUT)?;
                        marks.insert(p.id(), (low, high));
                    }
                    Some(marks)
                }
                None => None,
            };
            all.insert(name, marks);
        }
        Ok(all)
    })
    .await
    .map_err(|_| KafkaError::Canceled)?
}

/// Where a reader stands in one partition.
#[derive(Debug, Clone, Copy)]
struct Place {
    /// The partition's first offset.
    low: i64,
    /// The first offset wanted.
    start: i64,
    /// The next offset to hand out (anything before it was handed out or is not wanted).
    next: i64,
    /// The end the broker reported.
    end: i64,
    /// Whether it was rewound to its beginning after starting inside a batch.
    rewound: bool,
}

impl Place {
    /// Whether nothing was handed out yet from a start past the beginning, and the
    /// partition was not rewound already: it may be read again from its beginning.
    fn can_rewind(&self) -> bool {
        !self.rewound && self.next == self.start && self.start > self.low
    }
}

/// Reads one topic from chosen offsets, partitions interleaved, each in order.
pub struct Reader {
    consumer: StreamConsumer,
    topic: String,
    places: BTreeMap<i32, Place>,
    until: Until,
    opened: Instant,
    last_message: Instant,
}

impl Reader {
    /// A reader of `topic` whose partitions have `marks`, each from `start(partition,
    /// low, high)` (clamped to the watermarks), until `until`.
    pub fn open(
        brokers: &Brokers,
        topic: &str,
        marks: &Watermarks,
        start: impl Fn(i32, i64, i64) -> i64,
        until: Until,
    ) -> Result<Reader, KafkaError> {
        let consumer: StreamConsumer = crate::kafka::client_config(brokers, "govlink-ops")
            // Required by the client; nothing is ever committed for it.
            .set("group.id", "govlink-ops-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", crate::kafka::FETCH_WAIT_MS)
            .create()?;
        let places = marks
            .iter()
            .map(|(&partition, &(low, high))| {
                let start = start(partition, low, high).clamp(low, high.max(low));
                let place = Place {
                    low,
                    start,
                    next: start,
                    end: high,
                    rewound: false,
                };
                (partition, place)
            })
            .collect();
        let now = Instant::now();
        let reader = Reader {
            consumer,
            topic: topic.to_owned(),
            places,
            until,
            opened: now,
            last_message: now,
        };
        reader.assign()?;
        Ok(reader)
    }

    /// Fetches every partition from its next offset (from its beginning once rewound).
    fn assign(&self) -> Result<(), KafkaError> {
        let mut assignment = TopicPartitionList::new();
        for (&partition, place) in &self.places {
            let from = if place.rewound && place.next == place.start {
                place.low
            } else {
                place.next
            };
            assignment.add_partition_offset(&self.topic, partition, Offset::Offset(from))?;
        }
        self.consumer.assign(&assignment)
    }

    /// The next message, or `None` where the reader stops.
    pub async fn next(&mut self) -> Result<Option<OwnedMessage>, ReadError> {
        loop {
            let behind: Vec<i32> = self
                .places
                .iter()
                .filter(|(_, place)| place.next < place.end)
                .map(|(partition, _)| *partition)
                .collect();
            if behind.is_empty() && self.until == Until::Opened {
                return Ok(None);
            }
            self.rewind_stalled()?;
            let wait = if behind.is_empty() { QUIET } else { STALL };
            match timeout(wait, self.consumer.recv()).await {
                Ok(Ok(message)) => {
                    let until = self.until;
                    let Some(place) = self.places.get_mut(&message.partition()) else {
                        continue;
                    };
                    let past_opened = until == Until::Opened && message.offset() >= place.end;
                    if message.offset() < place.next || past_opened {
                        continue;
                    }
                    if message.offset() > place.next && place.can_rewind() {
                        // The broker skipped to its next batch: it cannot start a fetch
                        // inside the one that holds the first offset wanted.
                        place.rewound = true;
                        self.assign()?;
                        continue;
                    }
                    place.next = message.offset() + 1;
                    self.last_message = Instant::now();
                    return Ok(Some(message.detach()));
                }
                // Usually transient (a broker connection dropped): librdkafka reconnects,
                // and a lasting one ends in `Stalled` or at the quiet end.
                Ok(Err(e)) => {
                    tracing::warn!(topic = self.topic, error = %e, "consume error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(_) if behind.is_empty() => {
                    if self.until == Until::End {
                        return Ok(None);
                    }
                }
                Err(_) if self.last_message.elapsed() >= GIVE_UP => {
                    return Err(ReadError::Stalled {
                        topic: self.topic.clone(),
                        partitions: behind,
                    });
                }
                Err(_) => {}
            }
        }
    }

    /// Rewinds the partitions that delivered nothing since they were asked to start past
    /// their beginning: a broker may answer nothing to a fetch it cannot start there.
    fn rewind_stalled(&mut self) -> Result<(), KafkaError> {
        if self.opened.elapsed() < STALL {
            return Ok(());
        }
        let mut rewound = false;
        for place in self.places.values_mut() {
            if place.can_rewind() && place.next < place.end {
                place.rewound = true;
                rewound = true;
            }
        }
        if rewound {
            tracing::debug!(
                topic = self.topic,
                "reading stalled partitions from their beginning"
            );
            self.assign()?;
        }
        Ok(())
    }

    /// The next offset of each partition: where a reader that handed out everything so
    /// far would go on.
    pub fn positions(&self) -> BTreeMap<i32, i64> {
        self.places
            .iter()
            .map(|(partition, place)| (*partition, place.next))
            .collect()
    }
}

/// A client of consumer group `group` that never joins it: it only reads and writes the
/// group's committed offsets.
fn group_client(brokers: &Brokers, group: &str) -> Result<BaseConsumer, KafkaError> {
    crate::kafka::client_config(brokers, "govlink-ops")
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
}

/// The offsets `group` committed on `partitions` of `topic` (`None`: no commit).
pub async fn committed(
    brokers: &Brokers,
    group: &str,
    topic: &str,
    partitions: Vec<i32>,
) -> Result<BTreeMap<i32, Option<i64>>, KafkaError> {
    let (brokers, group, topic) = (brokers.clone(), group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let client = group_client(&brokers, &group)?;
        let mut asked = TopicPartitionList::new();
        for partition in &partitions {
            asked.add_partition(&topic, *partition);
        }
        let answer = client.committed_offsets(asked, REQUEST_TIMEOUT)?;
        Ok(answer
            .elements()
            .iter()
            .map(|e| {
                let offset = match e.offset() {
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                };
                (e.partition(), offset)
            })
            .collect())
    })
    .await
    .map_err(|_| KafkaError::Canceled)?
}

/// Commits `offsets` (partition → next offset to read) of `topic` for `group`.
pub async fn commit(
    brokers: &Brokers,
    group: &str,
    topic: &str,
    offsets: BTreeMap<i32, i64>,
) -> Result<(), KafkaError> {
    let (brokers, group, topic) = (brokers.clone(), group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let client = group_client(&brokers, &group)?;
        let mut list = TopicPartitionList::new();
        for (partition, offset) in offsets {
            list.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
        }
        client.commit(&list, CommitMode::Sync)
    })
    .await
    .map_err(|_| KafkaError::Canceled)?
}
