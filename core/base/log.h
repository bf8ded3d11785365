#pragma once

#include <sstream>
#include <string>

// Minimal leveled logging to stderr (Debian's abseil 20220623 has no absl/log).
// XC_LOG(INFO) << "text";
// XC_CHECK(cond) << "why";    a broken invariant: the process aborts (a core dump to debug).
// XC_REQUIRE(cond) << "why";  what a process cannot start without (a flag, a certificate, a
//                             port): it prints why and exits with status 1, as a server should
//                             on bad configuration.

namespace xc {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kFatal = 4 };

void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();

class LogMessage {
 public:
  // exit_status != 0: after printing, the process ends with that status (no destructors run:
  // other threads may still be working).
  LogMessage(LogLevel level, const char* file, int line, int exit_status = 0);
  ~LogMessage();
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  int exit_status_;
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

#define XC_REQUIRE(cond)        \
  (cond) ? (void)0              \
         : ::xc::LogVoidify() & \
               ::xc::LogMessage(::xc::LogLevel::kError, __FILE__, __LINE__, 1).stream()
