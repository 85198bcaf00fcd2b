//! `connector = 'nexmark'`: the Nexmark benchmark's people, auctions and bids as stream
//! rows. The events themselves come from the `nexmark` crate (the generator RisingWave
//! uses); this module owns the options, the snake_case schemas and the event times.
//!
//! ```sql
//! CREATE STREAM bids WITH (connector = 'nexmark', event = 'bid', rate = 100000, max_events = 1000000);
//! ```
//!
//! | option       | meaning                                                        | default             |
//! |--------------|----------------------------------------------------------------|---------------------|
//! | `event`      | `person`, `auction` or `bid`: which rows this stream carries    | required            |
//! | `rate`       | events per second of the whole Nexmark generator (all three kinds) | as fast as possible, stamped as 10,000/s |
//! | `max_events` | rows of this stream's kind, after which it ends                 | unbounded           |
//! | `base_time`  | event time of the generator's first event                      | creation time       |
//!
//! Nexmark generates one sequence of events in which every 50 are 1 person, 3 auctions and
//! 46 bids, in that order. A stream keeps the events of its kind from that sequence, so
//! three streams created with the same `rate` and `base_time` are one consistent Nexmark
//! data set: bids refer to auctions and people that exist, and joins such as Nexmark's q3
//! and q8 find matches. Event number `n` of the whole sequence is stamped
//! `base_time + n / rate`, so a bid stream at `rate = 100000` holds 92,000 bids per second
//! of event time, and `max_events = 1000000` bids are the first million bids of about
//! 1.09 million events, 10.9 s of event time.
//!
//! Columns (every column nullable, as a declared stream's would be):
//!
//! - bid: `auction, bidder, price BIGINT, channel, url TEXT, date_time TIMESTAMP, extra TEXT`
//! - auction: `id BIGINT, item_name, description TEXT, initial_bid, reserve BIGINT,
//!   date_time, expires TIMESTAMP, seller, category BIGINT, extra TEXT`
//! - person: `id BIGINT, name, email_address, credit_card, city, state TEXT,
//!   date_time TIMESTAMP, extra TEXT`
//!
//! `date_time` carries a 4-second watermark. Rows are a function of the event number
//! only, so there is no `seed`: the three streams must agree to be joinable.
//!
//! Throughput is bounded by the crate, which builds each event's strings one at a time:
//! about 2.5 million bids, 1.3 million people or 1 million auctions per second on one
//! core. `batch` takes `&self`, so a caller may make batches on several threads at once.

use std::sync::{Arc, LazyLock};

use ::nexmark::EventGenerator;
use ::nexmark::config::NexmarkConfig;
use ::nexmark::event::{Event, EventType};
use arrow::array::{ArrayRef, Int64Array, StringBuilder, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use super::{
    DEFAULT_EVENT_RATE, event_time_ns, format_base_time, option, parse_count, parse_rate,
    refuse_others_options, rows_in_range,
};

/// Nexmark's mix: of every [`EVENTS_PER_CYCLE`] events, this many are people, auctions and
/// bids, in that order (the `nexmark` crate's default proportions).
const PEOPLE_PER_CYCLE: u64 = 1;
const AUCTIONS_PER_CYCLE: u64 = 3;
const BIDS_PER_CYCLE: u64 = 46;
const EVENTS_PER_CYCLE: u64 = PEOPLE_PER_CYCLE + AUCTIONS_PER_CYCLE + BIDS_PER_CYCLE;

/// How late a Nexmark event may arrive: the watermark delay on `date_time`.
const WATERMARK_DELAY_MS: i64 = 4_000;

/// Which of Nexmark's three event kinds a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NexmarkEvent {
    Person,
    Auction,
    Bid,
}

impl NexmarkEvent {
    fn parse(text: &str) -> Result<NexmarkEvent, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "person" => Ok(NexmarkEvent::Person),
            "auction" => Ok(NexmarkEvent::Auction),
            "bid" => Ok(NexmarkEvent::Bid),
            _ => Err(format!(
                "event must be one of person, auction, bid, e.g. WITH (connector = 'nexmark', event = 'bid'); got '{text}'"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            NexmarkEvent::Person => "person",
            NexmarkEvent::Auction => "auction",
            NexmarkEvent::Bid => "bid",
        }
    }

    /// Events of this kind in each cycle of [`EVENTS_PER_CYCLE`].
    fn per_cycle(self) -> u64 {
        match self {
            NexmarkEvent::Person => PEOPLE_PER_CYCLE,
            NexmarkEvent::Auction => AUCTIONS_PER_CYCLE,
            NexmarkEvent::Bid => BIDS_PER_CYCLE,
        }
    }

    fn event_type(self) -> EventType {
        match self {
            NexmarkEvent::Person => EventType::Person,
            NexmarkEvent::Auction => EventType::Auction,
            NexmarkEvent::Bid => EventType::Bid,
        }
    }

    fn schema(self) -> SchemaRef {
        match self {
            NexmarkEvent::Person => PERSON_SCHEMA.clone(),
            NexmarkEvent::Auction => AUCTION_SCHEMA.clone(),
            NexmarkEvent::Bid => BID_SCHEMA.clone(),
        }
    }
}

static BID_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    schema(&[
        ("auction", BIGINT),
        ("bidder", BIGINT),
        ("price", BIGINT),
        ("channel", TEXT),
        ("url", TEXT),
        ("date_time", TIMESTAMP),
        ("extra", TEXT),
    ])
});

static AUCTION_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    schema(&[
        ("id", BIGINT),
        ("item_name", TEXT),
        ("description", TEXT),
        ("initial_bid", BIGINT),
        ("reserve", BIGINT),
        ("date_time", TIMESTAMP),
        ("expires", TIMESTAMP),
        ("seller", BIGINT),
        ("category", BIGINT),
        ("extra", TEXT),
    ])
});

static PERSON_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    schema(&[
        ("id", BIGINT),
        ("name", TEXT),
        ("email_address", TEXT),
        ("credit_card", TEXT),
        ("city", TEXT),
        ("state", TEXT),
        ("date_time", TIMESTAMP),
        ("extra", TEXT),
    ])
});

const BIGINT: DataType = DataType::Int64;
const TEXT: DataType = DataType::Utf8;
const TIMESTAMP: DataType = DataType::Timestamp(TimeUnit::Nanosecond, None);

fn schema(columns: &[(&str, DataType)]) -> SchemaRef {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, data_type)| Field::new(*name, data_type.clone(), true))
        .collect();
    Arc::new(Schema::new(fields))
}

/// A Nexmark stream's options, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NexmarkSpec {
    event: NexmarkEvent,
    /// Events per second of the whole generator, as given.
    rate: Option<u64>,
    /// Rows of this stream's kind.
    max_events: Option<u64>,
    /// Event time of event number 0, in nanoseconds since the Unix epoch.
    base_time_ns: i64,
}

impl NexmarkSpec {
    /// Reads `event`, `rate` and `max_events`; `base_time` is already resolved by the caller.
    pub(super) fn from_options(
        options: &[(String, String)],
        base_time_ns: i64,
        declared: Option<SchemaRef>,
    ) -> Result<NexmarkSpec, String> {
        if option(options, "seed").is_some() {
            return Err("connector 'nexmark' takes no seed: its rows are fixed by the event number, \
                        so that person, auction and bid streams agree and can be joined; remove seed"
                .to_string());
        }
        refuse_others_options(options, "nexmark")?;
        let event = match option(options, "event") {
            Some(text) => NexmarkEvent::parse(text)?,
            None => {
                return Err(
                    "connector 'nexmark' needs event = 'person', 'auction' or 'bid', \
                            e.g. WITH (connector = 'nexmark', event = 'bid')"
                        .to_string(),
                );
            }
        };
        let rate = option(options, "rate")
            .map(|text| parse_rate("rate", text))
            .transpose()?;
        let max_events = option(options, "max_events")
            .map(|text| parse_count("max_events", text))
            .transpose()?;
        let spec = NexmarkSpec {
            event,
            rate,
            max_events,
            base_time_ns,
        };
        if let Some(declared) = declared.filter(|schema| !schema.fields().is_empty()) {
            spec.check_declared(&declared)?;
        }
        Ok(spec)
    }

    /// A declared column list must be Nexmark's own: the rows cannot fit any other.
    fn check_declared(&self, declared: &Schema) -> Result<(), String> {
        let schema = self.schema();
        let same = declared.fields().len() == schema.fields().len()
            && declared.fields().iter().zip(schema.fields()).all(|(d, s)| {
                d.name().eq_ignore_ascii_case(s.name()) && d.data_type() == s.data_type()
            });
        if same {
            return Ok(());
        }
        let columns: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), sql_name(f.data_type())))
            .collect();
        Err(format!(
            "connector 'nexmark' defines the columns of event '{}' itself: {}; leave out the column list",
            self.event.name(),
            columns.join(", ")
        ))
    }

    pub fn event(&self) -> NexmarkEvent {
        self.event
    }

    pub(super) fn resolved_options(&self) -> Vec<(String, String)> {
        let mut options = vec![
            ("connector".to_string(), "nexmark".to_string()),
            ("event".to_string(), self.event.name().to_string()),
        ];
        if let Some(rate) = self.rate {
            options.push(("rate".to_string(), rate.to_string()));
        }
        if let Some(max_events) = self.max_events {
            options.push(("max_events".to_string(), max_events.to_string()));
        }
        options.push(("base_time".to_string(), format_base_time(self.base_time_ns)));
        options
    }

    pub fn schema(&self) -> SchemaRef {
        self.event.schema()
    }

    pub(super) fn watermark(&self) -> (String, i64) {
        ("date_time".to_string(), WATERMARK_DELAY_MS)
    }

    /// Rows of this stream's kind per second: its share of the generator's `rate`, so that
    /// event time keeps pace with the wall clock (at least 1).
    pub fn rate(&self) -> Option<u64> {
        let share = self.event.per_cycle();
        self.rate
            .map(|rate| ((rate * share + EVENTS_PER_CYCLE / 2) / EVENTS_PER_CYCLE).max(1))
    }

    pub fn max_events(&self) -> Option<u64> {
        self.max_events
    }

    /// Rows `[start, start + len)` of this stream's kind. The crate computes the event with
    /// a given number directly, so `start` costs nothing to reach.
    pub fn batch(&self, start: u64, len: usize) -> RecordBatch {
        let rows = rows_in_range(start, len, self.max_events);
        let mut events = EventGenerator::new(self.crate_config())
            .with_type_filter(self.event.event_type())
            .with_offset(start);
        let columns = match self.event {
            NexmarkEvent::Bid => self.bids(&mut events, rows),
            NexmarkEvent::Auction => self.auctions(&mut events, rows),
            NexmarkEvent::Person => self.people(&mut events, rows),
        };
        RecordBatch::try_new(self.schema(), columns)
            .expect("bug: Nexmark columns do not match the Nexmark schema")
    }

    /// The crate's configuration: its defaults (the Nexmark spec's), at our rate. Its own
    /// clock is set to zero and used only for the length of auctions; event times are ours.
    fn crate_config(&self) -> NexmarkConfig {
        let rate = self.time_rate() as usize;
        NexmarkConfig {
            base_time: 0,
            first_rate: rate,
            next_rate: rate,
            ..NexmarkConfig::default()
        }
    }

    /// The rate event times are stamped at.
    fn time_rate(&self) -> u64 {
        self.rate.unwrap_or(DEFAULT_EVENT_RATE)
    }

    /// The event time of the generator's next event.
    fn next_time(&self, events: &EventGenerator) -> i64 {
        event_time_ns(self.base_time_ns, events.global_offset(), self.time_rate())
    }

    fn bids(&self, events: &mut EventGenerator, rows: usize) -> Vec<ArrayRef> {
        let mut auction = Vec::with_capacity(rows);
        let mut bidder = Vec::with_capacity(rows);
        let mut price = Vec::with_capacity(rows);
        let mut channel = StringBuilder::with_capacity(rows, rows * 16);
        let mut url = StringBuilder::with_capacity(rows, rows * 96);
        let mut date_time = Vec::with_capacity(rows);
        let mut extra = StringBuilder::with_capacity(rows, rows * 80);
        for _ in 0..rows {
            date_time.push(self.next_time(events));
            let Some(Event::Bid(bid)) = events.next() else {
                unreachable!("a bid-filtered Nexmark generator yields bids")
            };
            auction.push(bid.auction as i64);
            bidder.push(bid.bidder as i64);
            price.push(bid.price as i64);
            channel.append_value(&bid.channel);
            url.append_value(&bid.url);
            extra.append_value(&bid.extra);
        }
        vec![
            ints(auction),
            ints(bidder),
            ints(price),
            Arc::new(channel.finish()),
            Arc::new(url.finish()),
            timestamps(date_time),
            Arc::new(extra.finish()),
        ]
    }

    fn auctions(&self, events: &mut EventGenerator, rows: usize) -> Vec<ArrayRef> {
        let mut id = Vec::with_capacity(rows);
        let mut item_name = StringBuilder::with_capacity(rows, rows * 20);
        let mut description = StringBuilder::with_capacity(rows, rows * 100);
        let mut initial_bid = Vec::with_capacity(rows);
        let mut reserve = Vec::with_capacity(rows);
        let mut date_time = Vec::with_capacity(rows);
        let mut expires = Vec::with_capacity(rows);
        let mut seller = Vec::with_capacity(rows);
        let mut category = Vec::with_capacity(rows);
        let mut extra = StringBuilder::with_capacity(rows, rows * 400);
        for _ in 0..rows {
            let time = self.next_time(events);
            let Some(Event::Auction(auction)) = events.next() else {
                unreachable!("an auction-filtered Nexmark generator yields auctions")
            };
            // The crate draws each auction's length in its own milliseconds; keep that
            // length and start it at our event time.
            let length_ms = auction.expires.saturating_sub(auction.date_time);
            let length_ns =
                i64::try_from(length_ms).map_or(i64::MAX, |ms| ms.saturating_mul(1_000_000));
            id.push(auction.id as i64);
            item_name.append_value(&auction.item_name);
            description.append_value(&auction.description);
            initial_bid.push(auction.initial_bid as i64);
            reserve.push(auction.reserve as i64);
            date_time.push(time);
            expires.push(time.saturating_add(length_ns));
            seller.push(auction.seller as i64);
            category.push(auction.category as i64);
            extra.append_value(&auction.extra);
        }
        vec![
            ints(id),
            Arc::new(item_name.finish()),
            Arc::new(description.finish()),
            ints(initial_bid),
            ints(reserve),
            timestamps(date_time),
            timestamps(expires),
            ints(seller),
            ints(category),
            Arc::new(extra.finish()),
        ]
    }

    fn people(&self, events: &mut EventGenerator, rows: usize) -> Vec<ArrayRef> {
        let mut id = Vec::with_capacity(rows);
        let mut name = StringBuilder::with_capacity(rows, rows * 16);
        let mut email_address = StringBuilder::with_capacity(rows, rows * 20);
        let mut credit_card = StringBuilder::with_capacity(rows, rows * 20);
        let mut city = StringBuilder::with_capacity(rows, rows * 12);
        let mut state = StringBuilder::with_capacity(rows, rows * 2);
        let mut date_time = Vec::with_capacity(rows);
        let mut extra = StringBuilder::with_capacity(rows, rows * 160);
        for _ in 0..rows {
            date_time.push(self.next_time(events));
            let Some(Event::Person(person)) = events.next() else {
                unreachable!("a person-filtered Nexmark generator yields people")
            };
            id.push(person.id as i64);
            name.append_value(&person.name);
            email_address.append_value(&person.email_address);
            credit_card.append_value(&person.credit_card);
            city.append_value(&person.city);
            state.append_value(&person.state);
            extra.append_value(&person.extra);
        }
        vec![
            ints(id),
            Arc::new(name.finish()),
            Arc::new(email_address.finish()),
            Arc::new(credit_card.finish()),
            Arc::new(city.finish()),
            Arc::new(state.finish()),
            timestamps(date_time),
            Arc::new(extra.finish()),
        ]
    }
}

// Nexmark's ids, prices and categories are `usize` in the crate and far below 2^63, so
// the `as i64` conversions above never wrap.

fn ints(values: Vec<i64>) -> ArrayRef {
    Arc::new(Int64Array::from(values))
}

fn timestamps(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from(values))
}

/// The SQL spelling of the three types Nexmark columns have, for error messages.
fn sql_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Int64 => "BIGINT".to_string(),
        DataType::Utf8 => "TEXT".to_string(),
        DataType::Timestamp(_, None) => "TIMESTAMP".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::GeneratorSpec;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int64Type, TimestampNanosecondType};

    const BASE: &str = "2024-01-01 00:00:00";
    const BASE_NS: i64 = 1_704_067_200_000_000_000;

    fn spec(pairs: &[(&str, &str)]) -> Result<GeneratorSpec, String> {
        let mut options = vec![("connector".to_string(), "nexmark".to_string())];
        options.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        GeneratorSpec::from_options(&options, 0).map(|spec| spec.expect("a connector was given"))
    }

    fn bids() -> GeneratorSpec {
        spec(&[("event", "bid"), ("rate", "1000"), ("base_time", BASE)]).unwrap()
    }

    fn times(batch: &RecordBatch) -> Vec<i64> {
        let column = batch.column_by_name("date_time").unwrap();
        column
            .as_primitive::<TimestampNanosecondType>()
            .values()
            .to_vec()
    }

    #[test]
    fn same_options_same_rows() {
        for event in ["person", "auction", "bid"] {
            let a = spec(&[("event", event), ("base_time", BASE)]).unwrap();
            let b = spec(&[("event", event), ("base_time", BASE)]).unwrap();
            assert_eq!(a.batch(0, 500), b.batch(0, 500), "{event}");
            assert_eq!(a.batch(0, 500).num_rows(), 500);
            assert_eq!(a.batch(0, 1).schema(), a.schema());
        }
    }

    #[test]
    fn a_batch_is_a_slice_of_a_larger_one() {
        for event in ["person", "auction", "bid"] {
            let spec = spec(&[("event", event), ("rate", "777"), ("base_time", BASE)]).unwrap();
            let whole = spec.batch(0, 300);
            for (start, len) in [(0, 1), (1, 46), (45, 3), (97, 200)] {
                let part = spec.batch(start as u64, len);
                assert_eq!(part, whole.slice(start, len), "{event} [{start}, +{len})");
            }
        }
    }

    #[test]
    fn max_events_counts_rows_of_the_kind() {
        let spec = spec(&[("event", "bid"), ("max_events", "100"), ("base_time", BASE)]).unwrap();
        assert_eq!(spec.max_events(), Some(100));
        assert_eq!(spec.batch(0, 8192).num_rows(), 100);
        assert_eq!(spec.batch(90, 20).num_rows(), 10);
        assert_eq!(spec.batch(100, 20).num_rows(), 0);
        assert_eq!(spec.batch(1_000, 20).num_rows(), 0);
        assert_eq!(spec.batch(1_000, 20).schema(), spec.schema());
    }

    #[test]
    fn event_times_follow_the_mix() {
        let spec = bids();
        let times = times(&spec.batch(0, 1000));
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "bid times never go back"
        );
        // At 1000 events/s each event is 1 ms; bids are events 4..50 of each cycle of 50.
        let ms = 1_000_000;
        assert_eq!(times[0], BASE_NS + 4 * ms);
        assert_eq!(times[45], BASE_NS + 49 * ms);
        assert_eq!(times[46], BASE_NS + 54 * ms);

        let people = spec_times("person");
        assert_eq!(
            people[..3],
            [BASE_NS, BASE_NS + 50 * ms, BASE_NS + 100 * ms]
        );
        let auctions = spec_times("auction");
        assert_eq!(auctions[..4], [1, 2, 3, 51].map(|n| BASE_NS + n * ms));
    }

    #[test]
    fn far_rows_are_reached_directly() {
        let far = 1_000_000_000_u64;
        let batch = bids().batch(far, 2);
        assert_eq!(batch.num_rows(), 2);
        // Bid number `far` is event far / 46 * 50 + 4 + far % 46; at 1000 events/s, 1 ms each.
        let event = far / 46 * 50 + 4 + far % 46;
        assert_eq!(times(&batch)[0], BASE_NS + event as i64 * 1_000_000);
    }

    fn spec_times(event: &str) -> Vec<i64> {
        let spec = spec(&[("event", event), ("rate", "1000"), ("base_time", BASE)]).unwrap();
        times(&spec.batch(0, 10))
    }

    #[test]
    fn rows_are_the_nexmark_crates() {
        let config = NexmarkConfig {
            base_time: 0,
            first_rate: 1000,
            next_rate: 1000,
            ..NexmarkConfig::default()
        };
        let expected: Vec<_> = EventGenerator::new(config)
            .with_type_filter(EventType::Bid)
            .take(100)
            .collect();
        let batch = bids().batch(0, 100);
        let price = batch
            .column_by_name("price")
            .unwrap()
            .as_primitive::<Int64Type>();
        let url = batch.column_by_name("url").unwrap().as_string::<i32>();
        for (row, event) in expected.iter().enumerate() {
            let Event::Bid(bid) = event else {
                panic!("not a bid")
            };
            assert_eq!(price.value(row), bid.price as i64);
            assert_eq!(url.value(row), bid.url);
        }
    }

    #[test]
    fn auctions_expire_after_they_start() {
        let spec = spec(&[("event", "auction"), ("base_time", BASE)]).unwrap();
        let batch = spec.batch(0, 1000);
        let expires = batch.column_by_name("expires").unwrap();
        let expires = expires.as_primitive::<TimestampNanosecondType>();
        for (start, end) in times(&batch).iter().zip(expires.values()) {
            assert!(start < end);
        }
        assert_eq!(batch.column_by_name("id").unwrap().null_count(), 0);
    }

    #[test]
    fn rate_is_the_share_of_the_kind() {
        let rate = |event| {
            spec(&[("event", event), ("rate", "100000")])
                .unwrap()
                .rate()
        };
        assert_eq!(rate("bid"), Some(92_000));
        assert_eq!(rate("auction"), Some(6_000));
        assert_eq!(rate("person"), Some(2_000));
        assert_eq!(
            spec(&[("event", "person"), ("rate", "1")]).unwrap().rate(),
            Some(1)
        );
        assert_eq!(spec(&[("event", "bid")]).unwrap().rate(), None);
        let defaults = NexmarkConfig::default();
        assert_eq!(
            [
                defaults.person_proportion,
                defaults.auction_proportion,
                defaults.bid_proportion
            ],
            [1, 3, 46]
        );
    }

    #[test]
    fn watermark_and_options_round_trip() {
        let spec = spec(&[
            ("event", "auction"),
            ("rate", "5"),
            ("max_events", "7"),
            ("base_time", BASE),
        ])
        .unwrap();
        assert_eq!(spec.watermark(), Some(("date_time".to_string(), 4_000)));
        let resolved = spec.resolved_options();
        assert_eq!(
            resolved,
            [
                ("connector", "nexmark"),
                ("event", "auction"),
                ("rate", "5"),
                ("max_events", "7"),
                ("base_time", BASE),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(
            GeneratorSpec::from_options(&resolved, 1).unwrap(),
            Some(spec)
        );
    }

    #[test]
    fn bad_options_say_how_to_fix_them() {
        let err = |pairs: &[(&str, &str)]| spec(pairs).unwrap_err();
        assert_eq!(
            err(&[]),
            "connector 'nexmark' needs event = 'person', 'auction' or 'bid', e.g. WITH (connector = 'nexmark', event = 'bid')"
        );
        assert_eq!(
            err(&[("event", "bids")]),
            "event must be one of person, auction, bid, e.g. WITH (connector = 'nexmark', event = 'bid'); got 'bids'"
        );
        assert!(
            err(&[("event", "bid"), ("rate", "fast")]).starts_with("rate must be a whole number")
        );
        assert!(
            err(&[("event", "bid"), ("max_events", "-1")])
                .starts_with("max_events must be a whole number")
        );
        assert!(
            err(&[("event", "bid"), ("seed", "1")])
                .starts_with("connector 'nexmark' takes no seed")
        );
        assert_eq!(
            err(&[("event", "bid"), ("fields.price.kind", "random")]),
            "fields.price.kind is an option of connector 'datagen', not 'nexmark'; remove it"
        );
    }

    #[test]
    fn a_declared_column_list_must_be_nexmarks() {
        let options = [("connector", "nexmark"), ("event", "bid")]
            .map(|(k, v)| (k.to_string(), v.to_string()));
        let own = GeneratorSpec::from_options_with_schema(&options, 0, Some(BID_SCHEMA.clone()));
        assert!(own.unwrap().is_some());
        let other = schema(&[("auction", BIGINT)]);
        let err = GeneratorSpec::from_options_with_schema(&options, 0, Some(other)).unwrap_err();
        assert_eq!(
            err,
            "connector 'nexmark' defines the columns of event 'bid' itself: auction BIGINT, bidder BIGINT, \
             price BIGINT, channel TEXT, url TEXT, date_time TIMESTAMP, extra TEXT; leave out the column list"
        );
    }
}
