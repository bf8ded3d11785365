#include "core/metrics/metrics.h"

#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace xc::metrics {
namespace {

void AtomicAdd(std::atomic<double>* a, double by) {
  double old = a->load(std::memory_order_relaxed);
  while (!a->compare_exchange_weak(old, old + by, std::memory_order_relaxed)) {
  }
}

std::string FormatValue(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrCat(static_cast<int64_t>(v));
  return absl::StrCat(v);
}

std::string LabelText(const Labels& labels, const std::string& extra_name = "",
                      const std::string& extra_value = "") {
  if (labels.empty() && extra_name.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    absl::StrAppend(&out, first ? "" : ",", k, "=\"", EscapeLabelValue(v), "\"");
    first = false;
  }
  if (!extra_name.empty()) {
    absl::StrAppend(&out, first ? "" : ",", extra_name, "=\"", extra_value, "\"");
  }
  return out + "}";
}

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void Counter::Increment(double by) {
  if (by > 0) AtomicAdd(&value_, by);  // counters never go down
}

void Gauge::Increment(double by) { AtomicAdd(&value_, by); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i] = 0;
}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(&sum_, v);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::BucketCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

std::vector<double> BatchSizeBuckets() {
  std::vector<double> b;
  for (double v = 1; v <= 1024; v *= 2) b.push_back(v);
  return b;
}

std::vector<double> LatencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,     10};
}

template <typename T>
T& Family<T>::Add(const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<T>& slot = metrics_[labels];
  if (!slot) {
    if constexpr (std::is_same_v<T, Histogram>) {
      slot = std::make_unique<T>(bounds_);
    } else {
      slot = std::make_unique<T>();
    }
  }
  return *slot;
}

template <typename T>
std::vector<std::pair<Labels, const T*>> Family<T>::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<Labels, const T*>> out;
  for (const auto& [labels, metric] : metrics_) out.emplace_back(labels, metric.get());
  return out;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

namespace {

// The family already registered under `name`, if any (a second Add* of a name returns the first
// family, so that two components counting the same metric share it instead of printing it twice).
template <typename F>
F* Find(const std::vector<std::unique_ptr<F>>& families, const std::string& name) {
  for (const auto& f : families) {
    if (f->name() == name) return f.get();
  }
  return nullptr;
}

}  // namespace

Family<Counter>& Registry::AddCounter(const std::string& name, const std::string& help) {
  std::lock_guard<std::mutex> lock(mu_);
  if (Family<Counter>* f = Find(counters_, name)) return *f;
  counters_.push_back(std::make_unique<Family<Counter>>(name, help));
  order_.emplace_back(Type::kCounter, counters_.size() - 1);
  return *counters_.back();
}

Family<Gauge>& Registry::AddGauge(const std::string& name, const std::string& help) {
  std::lock_guard<std::mutex> lock(mu_);
  if (Family<Gauge>* f = Find(gauges_, name)) return *f;
  gauges_.push_back(std::make_unique<Family<Gauge>>(name, help));
  order_.emplace_back(Type::kGauge, gauges_.size() - 1);
  return *gauges_.back();
}

Family<Histogram>& Registry::AddHistogram(const std::string& name, const std::string& help,
                                          std::vector<double> bounds) {
  std::lock_guard<std::mutex> lock(mu_);
  if (Family<Histogram>* f = Find(histograms_, name)) return *f;
  histograms_.push_back(std::make_unique<Family<Histogram>>(name, help, std::move(bounds)));
  order_.emplace_back(Type::kHistogram, histograms_.size() - 1);
  return *histograms_.back();
}

void Registry::AddScrapeHook(absl::AnyInvocable<void()> hook) {
  std::lock_guard<std::mutex> lock(hooks_mu_);
  hooks_.push_back(std::move(hook));
}

std::string Registry::Serialize() const {
  {
    std::lock_guard<std::mutex> hooks(hooks_mu_);
    for (auto& hook : hooks_) hook();
  }
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [type, index] : order_) {
    switch (type) {
      case Type::kCounter: {
        const Family<Counter>& f = *counters_[index];
        absl::StrAppend(&out, "# HELP ", f.name(), " ", EscapeHelp(f.help()), "\n# TYPE ",
                        f.name(), " counter\n");
        for (const auto& [labels, c] : f.Snapshot()) {
          absl::StrAppend(&out, f.name(), LabelText(labels), " ", FormatValue(c->Value()), "\n");
        }
        break;
      }
      case Type::kGauge: {
        const Family<Gauge>& f = *gauges_[index];
        absl::StrAppend(&out, "# HELP ", f.name(), " ", EscapeHelp(f.help()), "\n# TYPE ",
                        f.name(), " gauge\n");
        for (const auto& [labels, g] : f.Snapshot()) {
          absl::StrAppend(&out, f.name(), LabelText(labels), " ", FormatValue(g->Value()), "\n");
        }
        break;
      }
      case Type::kHistogram: {
        const Family<Histogram>& f = *histograms_[index];
        absl::StrAppend(&out, "# HELP ", f.name(), " ", EscapeHelp(f.help()), "\n# TYPE ",
                        f.name(), " histogram\n");
        for (const auto& [labels, h] : f.Snapshot()) {
          std::vector<uint64_t> counts = h->BucketCounts();
          uint64_t cumulative = 0;
          for (size_t i = 0; i < counts.size(); ++i) {
            cumulative += counts[i];
            std::string le = i < h->bounds().size() ? FormatValue(h->bounds()[i]) : "+Inf";
            absl::StrAppend(&out, f.name(), "_bucket", LabelText(labels, "le", le), " ",
                            cumulative, "\n");
          }
          absl::StrAppend(&out, f.name(), "_sum", LabelText(labels), " ", FormatValue(h->Sum()),
                          "\n", f.name(), "_count", LabelText(labels), " ", cumulative, "\n");
        }
        break;
      }
    }
  }
  return out;
}

std::string EscapeLabelValue(absl::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeHelp(absl::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

ScopedTimer::ScopedTimer(Histogram* h) : h_(h), start_ns_(NowNanos()) {}

ScopedTimer::~ScopedTimer() {
  if (h_ != nullptr) h_->Observe(static_cast<double>(NowNanos() - start_ns_) / 1e9);
}

}  // namespace xc::metrics
