//! A resolver that polls one name every 10 ms for the whole run, over UDP, as a
//! client would, and records every answer: the A set, an empty answer
//! (NOERROR without A records, or NXDOMAIN), another response code (SERVFAIL,
//! REFUSED…) or a timeout — and, every few polls, the generation and epoch in
//! the name's ownership record (`_veer.<name>` TXT), which is what I2 is judged on.
//!
//! A dedicated thread with a blocking socket: no shelling out, no runtime, so
//! the cadence does not depend on the processes under test. Late ticks are
//! skipped, never replayed in a burst.

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use veer_provider::OwnershipRecord;

/// Polling period of the resolver.
pub const EVERY: Duration = Duration::from_millis(10);
/// The ownership record is read every this many polls (50 ms).
const OWNERSHIP_EVERY: u64 = 5;
/// How long one query may take before it counts as a timeout.
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// The shared time origin of a scenario: every recorded instant is an offset from it.
#[derive(Debug, Clone, Copy)]
pub struct Timeline(Instant);

impl Timeline {
    /// A timeline starting now.
    pub fn start() -> Self {
        Self(Instant::now())
    }
    /// Time since the start.
    pub fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// What one query returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// NOERROR with these A records.
    Answers(BTreeSet<Ipv4Addr>),
    /// An answer without any A record: NOERROR/NODATA or NXDOMAIN (named).
    Empty(String),
    /// Another response code (SERVFAIL, REFUSED, …).
    Failed(String),
    /// No response within the query timeout.
    Timeout,
}

/// One poll of the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poll {
    /// When the query was sent.
    pub at: Duration,
    /// What came back.
    pub outcome: Outcome,
}

/// One read of the ownership record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnershipSample {
    /// When the query was sent.
    pub at: Duration,
    /// The published generation.
    pub generation: u64,
    /// The epoch of the writer that published it.
    pub epoch: u64,
}

/// Everything a resolver saw.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// Every poll of the A record, in order.
    pub polls: Vec<Poll>,
    /// Every readable ownership record, in order.
    pub ownership: Vec<OwnershipSample>,
    /// Ownership reads that failed or did not decode (absent record, timeout).
    pub ownership_unreadable: usize,
}

/// A running resolver thread.
pub struct Resolver {
    stop: Arc<AtomicBool>,
    latest: Arc<Latest>,
    thread: Option<JoinHandle<Recording>>,
}

impl Resolver {
    /// Starts polling `name` (A) at `server` every 10 ms.
    pub fn start(server: SocketAddr, name: &str, timeline: Timeline) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let latest = Arc::new(Latest::default());
        let (name, owner) = (
            Name::from_ascii(name).expect("a valid name"),
            Name::from_ascii(format!("_veer.{name}")).expect("a valid name"),
        );
        let thread = std::thread::spawn({
            let (stop, latest) = (stop.clone(), latest.clone());
            move || poll_until(&stop, &latest, server, &name, &owner, timeline)
        });
        Self { stop, latest, thread: Some(thread) }
    }

    /// The last poll, if any.
    pub fn latest(&self) -> Option<Poll> {
        self.latest.poll.lock().unwrap().clone()
    }

    /// The last readable ownership record, if any.
    pub fn ownership(&self) -> Option<OwnershipSample> {
        *self.latest.ownership.lock().unwrap()
    }

    /// The addresses of the last poll (empty unless it was an answer).
    pub fn answers(&self) -> BTreeSet<Ipv4Addr> {
        match self.latest().map(|p| p.outcome) {
            Some(Outcome::Answers(set)) => set,
            _ => BTreeSet::new(),
        }
    }

    /// Waits up to `within` until the last poll answers exactly `expected`.
    pub fn wait_for(&self, within: Duration, expected: &BTreeSet<Ipv4Addr>) -> bool {
        crate::support::replica::wait_until(within, || self.answers() == *expected)
    }

    /// Stops polling and returns the recording.
    pub fn stop(mut self) -> Recording {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().expect("stopped once").join().expect("the resolver thread")
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What the test thread may look at while the resolver runs.
#[derive(Default)]
struct Latest {
    poll: Mutex<Option<Poll>>,
    ownership: Mutex<Option<OwnershipSample>>,
}

fn poll_until(
    stop: &AtomicBool,
    latest: &Latest,
    server: SocketAddr,
    name: &Name,
    owner: &Name,
    timeline: Timeline,
) -> Recording {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the resolver socket");
    socket.connect(server).expect("connect the resolver socket");
    let mut recording = Recording::default();
    let mut id: u16 = 0;
    let mut next = Instant::now();
    for n in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let at = timeline.now();
        id = id.wrapping_add(1);
        let outcome = match query(&socket, id, name, RecordType::A) {
            None => Outcome::Timeout,
            Some(response) => answer_of(&response),
        };
        let poll = Poll { at, outcome };
        *latest.poll.lock().unwrap() = Some(poll.clone());
        recording.polls.push(poll);
        if n % OWNERSHIP_EVERY == 0 {
            id = id.wrapping_add(1);
            let at = timeline.now();
            match query(&socket, id, owner, RecordType::TXT).as_ref().and_then(ownership_of) {
                Some(o) => {
                    let sample = OwnershipSample { at, generation: o.generation, epoch: o.epoch };
                    *latest.ownership.lock().unwrap() = Some(sample);
                    recording.ownership.push(sample);
                }
                None => recording.ownership_unreadable += 1,
            }
        }
        next += EVERY;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    recording
}

/// Sends one query and waits for the response with the same id.
fn query(socket: &UdpSocket, id: u16, name: &Name, rtype: RecordType) -> Option<Message> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(name.clone(), rtype));
    socket.send(&message.to_vec().ok()?).ok()?;
    let deadline = Instant::now() + QUERY_TIMEOUT;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?;
        socket.set_read_timeout(Some(left)).ok()?;
        let len = socket.recv(&mut buf).ok()?;
        // A late answer to an earlier query that timed out: keep waiting for ours.
        if let Ok(response) = Message::from_vec(&buf[..len])
            && response.metadata.id == id
        {
            return Some(response);
        }
    }
}

fn answer_of(response: &Message) -> Outcome {
    let code = response.metadata.response_code;
    let addresses: BTreeSet<Ipv4Addr> = response
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    match code {
        ResponseCode::NoError if !addresses.is_empty() => Outcome::Answers(addresses),
        ResponseCode::NoError | ResponseCode::NXDomain => Outcome::Empty(code.to_string()),
        other => Outcome::Failed(other.to_string()),
    }
}

fn ownership_of(response: &Message) -> Option<OwnershipRecord> {
    response.answers.iter().find_map(|r| match &r.data {
        RData::TXT(txt) => {
            let text: String = txt.txt_data.iter().map(|part| String::from_utf8_lossy(part).into_owned()).collect();
            OwnershipRecord::decode(&text).ok()
        }
        _ => None,
    })
}
