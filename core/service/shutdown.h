#pragma once

#include "absl/time/time.h"

namespace xc {

// SIGTERM / SIGINT handling for service mains: installs the handlers; WaitForShutdown blocks
// until a signal arrives (or RequestShutdown is called) and returns.
void InstallShutdownHandlers();
void WaitForShutdown();
bool ShutdownRequested();
void RequestShutdown();
// Sleeps up to `d`, returning early (true) when shutdown was requested.
bool SleepUnlessShutdown(absl::Duration d);
// SIGHUP: a request to reload configuration files (e.g. TLS certificates). Installed by
// InstallShutdownHandlers; TakeReloadRequest returns true once per signal received.
bool TakeReloadRequest();

}  // namespace xc
