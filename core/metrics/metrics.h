#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"

// A small Prometheus client with prometheus-cpp's shape (Registry → Family → metric), so that
// switching to prometheus-cpp later is mechanical. Label values come from small fixed sets:
// never a JID, a resource or an address. All types are thread-safe; metric objects live as
// long as their registry and their addresses are stable.
namespace xc::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Increment(double by = 1.0);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Increment(double by = 1.0);
  void Decrement(double by = 1.0) { Increment(-by); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);  // upper bounds, ascending; +Inf implied
  void Observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket (not cumulative) counts, with +Inf last; sum; count.
  std::vector<uint64_t> BucketCounts() const;
  double Sum() const { return sum_.load(std::memory_order_relaxed); }
  uint64_t Count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<double> sum_{0};
  std::atomic<uint64_t> count_{0};
};

// Latency buckets in seconds: 50 µs .. 10 s.
std::vector<double> LatencyBuckets();
// Sizes of batches (units per call): 1, 2, 4 .. 1024.
std::vector<double> BatchSizeBuckets();

enum class Type { kCounter, kGauge, kHistogram };

template <typename T>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<double> bounds = {})
      : name_(std::move(name)), help_(std::move(help)), bounds_(std::move(bounds)) {}
  // The metric with these labels, created on first use.
  T& Add(const Labels& labels);
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  std::vector<std::pair<Labels, const T*>> Snapshot() const;

 private:
  std::string name_;
  std::string help_;
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::map<Labels, std::unique_ptr<T>> metrics_;
};

class Registry {
 public:
  // The family of this name, created on first use (a later call's help and bounds are ignored).
  Family<Counter>& AddCounter(const std::string& name, const std::string& help);
  Family<Gauge>& AddGauge(const std::string& name, const std::string& help);
  Family<Histogram>& AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<double> bounds = LatencyBuckets());
  // Runs `hook` at the start of every Serialize(), one hook at a time: for counts another
  // component keeps, copied into this registry's metrics when they are scraped.
  void AddScrapeHook(absl::AnyInvocable<void()> hook);
  // Prometheus text exposition format 0.0.4.
  std::string Serialize() const;

 private:
  mutable std::mutex hooks_mu_;
  mutable std::vector<absl::AnyInvocable<void()>> hooks_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Family<Counter>>> counters_;
  std::vector<std::unique_ptr<Family<Gauge>>> gauges_;
  std::vector<std::unique_ptr<Family<Histogram>>> histograms_;
  std::vector<std::pair<Type, size_t>> order_;  // registration order, for stable output
};

// Escapes a label value (backslash, double quote, newline) and HELP text (backslash, newline).
std::string EscapeLabelValue(absl::string_view v);
std::string EscapeHelp(absl::string_view v);

// Measures from construction to destruction into a histogram, in seconds.
class ScopedTimer {
 public:
  explicit ScopedTimer(Histogram* h);
  ~ScopedTimer();

 private:
  Histogram* h_;
  int64_t start_ns_;
};

}  // namespace xc::metrics
