#pragma once

#include <sstream>
#include <string>

// Minimal leveled logging to stderr (Debian's abseil 20220623 has no absl/log).
// XC_LOG(INFO) << "text";   XC_CHECK(cond) << "why";  (a failed check aborts: broken invariant)

namespace xc {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kFatal = 4 };

void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

// Swallows a stream expression when the level is off.
struct LogVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace xc

#define XC_LOG_LEVEL_DEBUG ::xc::LogLevel::kDebug
#define XC_LOG_LEVEL_INFO ::xc::LogLevel::kInfo
#define XC_LOG_LEVEL_WARNING ::xc::LogLevel::kWarning
#define XC_LOG_LEVEL_ERROR ::xc::LogLevel::kError
#define XC_LOG_LEVEL_FATAL ::xc::LogLevel::kFatal

#define XC_LOG(level)                                      \
  (XC_LOG_LEVEL_##level < ::xc::MinLogLevel())             \
      ? (void)0                                            \
      : ::xc::LogVoidify() & ::xc::LogMessage(XC_LOG_LEVEL_##level, __FILE__, __LINE__).stream()

#define XC_CHECK(cond) \
  (cond) ? (void)0     \
         : ::xc::LogVoidify() & ::xc::LogMessage(::xc::LogLevel::kFatal, __FILE__, __LINE__).stream() << "Check failed: " #cond " "
