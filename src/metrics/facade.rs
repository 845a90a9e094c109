//! The seam between the layers and the `metrics` facade: handle types,
//! registration and labels, or — with the `metrics` feature off — stand-ins
//! that do nothing and compile to nothing; and [`enable`], the
//! application's word that a recorder is installed.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by [`enable`]; read when a layer is built, never per request.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Says that a recorder is installed, so that the layers built from now on
/// also measure what costs a clock read or some bookkeeping per request:
/// the pipeline's latencies and calls in flight, the KV server's store and
/// log figures. Call it after installing the recorder
/// (`metrics::set_global_recorder`, or a local recorder in a test) and
/// before building clients and servers; `describe()` calls it too. It
/// holds for the whole process and cannot be undone.
///
/// Layers built before it measure none of those, even once it is called;
/// their counters still count into the recorder that was installed when
/// they were built (each layer registers its handles then). Without the
/// cargo feature `metrics` it does nothing.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether [`enable`] was called (never, without the feature): asked when
/// a layer is built.
pub(crate) fn enabled() -> bool {
    cfg!(feature = "metrics") && ENABLED.load(Ordering::Relaxed)
}

#[cfg(feature = "metrics")]
mod real {
    pub(crate) use metrics::{Counter, Gauge, Histogram, Label};
    use metrics::{Key, Level, Metadata};

    static METADATA: Metadata<'static> = Metadata::new("wirestack", Level::INFO, Some("wirestack"));

    pub(crate) fn counter(name: &'static str, labels: &'static [Label]) -> Counter {
        let key = Key::from_static_parts(name, labels);
        metrics::with_recorder(|recorder| recorder.register_counter(&key, &METADATA))
    }

    pub(crate) fn gauge(name: &'static str) -> Gauge {
        let key = Key::from_static_name(name);
        metrics::with_recorder(|recorder| recorder.register_gauge(&key, &METADATA))
    }

    pub(crate) fn histogram(name: &'static str) -> Histogram {
        let key = Key::from_static_name(name);
        metrics::with_recorder(|recorder| recorder.register_histogram(&key, &METADATA))
    }

    /// A label of a fixed value.
    pub(crate) const fn label(key: &'static str, value: &'static str) -> Label {
        Label::from_static_parts(key, value)
    }
}

#[cfg(not(feature = "metrics"))]
mod real {
    //! Stand-ins: the same calls, doing nothing.

    #[derive(Debug, Clone, Default)]
    pub(crate) struct Counter;
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Gauge;
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Histogram;
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Label;

    impl Counter {
        pub(crate) fn increment(&self, _: u64) {}
        #[allow(
            dead_code,
            reason = "the facade's own call, for protocols that publish totals"
        )]
        pub(crate) fn absolute(&self, _: u64) {}
    }
    impl Gauge {
        pub(crate) fn increment(&self, _: f64) {}
        pub(crate) fn decrement(&self, _: f64) {}
        #[allow(
            dead_code,
            reason = "the facade's own call, for protocols that publish levels"
        )]
        pub(crate) fn set(&self, _: f64) {}
    }
    impl Histogram {
        pub(crate) fn record_many(&self, _: f64, _: usize) {}
    }

    pub(crate) fn counter(_: &'static str, _: &'static [Label]) -> Counter {
        Counter
    }
    pub(crate) fn gauge(_: &'static str) -> Gauge {
        Gauge
    }
    pub(crate) fn histogram(_: &'static str) -> Histogram {
        Histogram
    }
    pub(crate) const fn label(_: &'static str, _: &'static str) -> Label {
        Label
    }
}

pub(crate) use real::*;

/// An enum whose every variant is one value of a label, each written once:
///
/// ```ignore
/// label_values! {
///     /// Why a connection ended.
///     pub(crate) enum CloseCause: "cause" { PeerClosed = "peer_closed", Shutdown = "shutdown" }
/// }
/// ```
///
/// makes the enum, `CloseCause::ALL` (every variant, in order) and
/// `cause.labels()` (its label, `cause="peer_closed"`), for handles
/// registered once per value.
macro_rules! label_values {
    (
        $(#[$meta:meta])*
        $vis:vis enum $enum:ident: $key:literal { $($variant:ident = $value:literal),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $enum {
            $($variant),+
        }

        impl $enum {
            /// Every value, in the order declared.
            #[allow(dead_code, reason = "not every enum of label values is iterated")]
            $vis const ALL: [$enum; [$($value),+].len()] = [$($enum::$variant),+];

            /// This value's label.
            $vis fn labels(self) -> &'static [$crate::metrics::Label] {
                static LABELS: [[$crate::metrics::Label; 1]; [$($value),+].len()] =
                    [$([$crate::metrics::label($key, $value)]),+];
                &LABELS[self as usize]
            }
        }
    };
}

pub(crate) use label_values;
