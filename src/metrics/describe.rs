//! [`describe`]: the unit and help text of every name, for the recorder,
//! read from the table (see [`Metric`]).

use super::{enable, names, Kind, Metric, Unit};
use metrics::{KeyName, SharedString};

/// Tells the installed recorder the unit and meaning of every metric the
/// framework records (exporters show them, Prometheus as `# HELP`), and
/// calls [`enable`]: describing is saying a recorder is installed. Call it
/// after installing the recorder and before building clients and servers;
/// calling it again does no harm.
pub fn describe() {
    enable();
    names::METRICS.iter().for_each(Metric::describe);
}

impl Metric {
    /// Tells the installed recorder this metric's unit and help text.
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn describe(&self) {
        let name = KeyName::from_const_str(self.name);
        let unit = Some(match self.unit {
            Unit::Count => metrics::Unit::Count,
            Unit::Seconds => metrics::Unit::Seconds,
            Unit::Bytes => metrics::Unit::Bytes,
        });
        let help = SharedString::const_str(self.help);
        metrics::with_recorder(|recorder| match self.kind {
            Kind::Counter => recorder.describe_counter(name, unit, help),
            Kind::Gauge => recorder.describe_gauge(name, unit, help),
            Kind::Histogram => recorder.describe_histogram(name, unit, help),
        });
    }
}
