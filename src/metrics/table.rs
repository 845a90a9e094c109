//! The shape of a metrics table: [`Metric`], its [`Kind`] and [`Unit`], and
//! `metric_table!`, which defines a table's names from one list of rows.
//!
//! Each metric is one row — its constant, kind, unit, name, labels and
//! help text — and the macro makes of the rows the `pub const` names (with
//! their docs), `ALL` (the names) and `METRICS` (the rows), which
//! `describe()` hands to the recorder. The framework's
//! table is [`names`](super::names); the protocols keep theirs beside their
//! own code (the KV store's is in the `kv` module's `metrics`).

/// What kind of instrument a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// Only goes up (Prometheus `counter`).
    Counter,
    /// Goes up and down, or is set (Prometheus `gauge`).
    Gauge,
    /// A distribution of values (Prometheus `histogram`).
    Histogram,
}

impl Kind {
    /// The kind as Prometheus writes it in `# TYPE`: `counter`, `gauge`,
    /// `histogram`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// What a metric's values count or measure (its name ends in it, but for
/// counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unit {
    /// A number of things.
    Count,
    /// Seconds (durations, or a Unix time).
    Seconds,
    /// Bytes.
    Bytes,
}

/// One row of a metrics table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metric {
    /// The name recorded, e.g. `wirestack_client_requests_total`.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// What its values are in.
    pub unit: Unit,
    /// The keys of its labels (each takes a few fixed values); empty for most.
    pub labels: &'static [&'static str],
    /// Its meaning, as exporters show it (Prometheus' `# HELP`).
    pub help: &'static str,
}

/// Defines, from rows `CONST: Kind, Unit, "name", ["label", ...], "help";`,
/// a `pub const CONST: &str` per row, `ALL` (every name) and `METRICS`
/// (every row, a [`Metric`]), where it is invoked.
macro_rules! metric_table {
    ($(
        $constant:ident: $kind:ident, $unit:ident, $name:literal, [$($label:literal),*], $help:literal;
    )*) => {
        $(
            #[doc = concat!(stringify!($kind), " `", $name, "`", $(", label `", $label, "`",)* ": ", $help)]
            pub const $constant: &str = $name;
        )*

        /// Every name above.
        pub const ALL: &[&str] = &[$($constant),*];

        /// Every metric above, with its kind, unit, labels and help text.
        pub const METRICS: &[$crate::metrics::Metric] = &[$(
            $crate::metrics::Metric {
                name: $constant,
                kind: $crate::metrics::Kind::$kind,
                unit: $crate::metrics::Unit::$unit,
                labels: &[$($label),*],
                help: $help,
            }
        ),*];
    };
}

pub(crate) use metric_table;
