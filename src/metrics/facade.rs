//! The seam between the layers and the `metrics` facade: handle types,
//! registration and labels, or — with the `metrics` feature off — stand-ins
//! that do nothing and compile to nothing.

#[cfg(feature = "metrics")]
mod real {
    pub(crate) use metrics::{Counter, Gauge, Histogram, Label};
    use metrics::{Key, Level, Metadata};

    static METADATA: Metadata<'static> = Metadata::new("wirestack", Level::INFO, Some("wirestack"));

    /// `true` when a recorder is installed (globally, or for this thread).
    ///
    /// The facade's no-op recorder is the only zero-sized one it installs
    /// by itself; every exporter's recorder holds state. Asked when a layer
    /// registers its handles, never per request.
    pub(crate) fn recorder_installed() -> bool {
        metrics::with_recorder(|recorder| std::mem::size_of_val(recorder) != 0)
    }

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

    pub(crate) fn recorder_installed() -> bool {
        false
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
