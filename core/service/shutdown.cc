#include "core/service/shutdown.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>

#include "absl/synchronization/mutex.h"

namespace xc {
namespace {

std::atomic<bool> g_requested{false};
std::atomic<bool> g_reload{false};
int g_pipe[2] = {-1, -1};

void OnSignal(int) {
  g_requested = true;
  char c = 1;
  if (g_pipe[1] >= 0) (void)!write(g_pipe[1], &c, 1);
}

void OnReload(int) { g_reload = true; }

}  // namespace

bool TakeReloadRequest() { return g_reload.exchange(false); }

void InstallShutdownHandlers() {
  if (g_pipe[0] < 0 && pipe(g_pipe) != 0) g_pipe[0] = g_pipe[1] = -1;
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  struct sigaction reload = {};
  reload.sa_handler = OnReload;
  sigemptyset(&reload.sa_mask);
  sigaction(SIGHUP, &reload, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

bool ShutdownRequested() { return g_requested.load(); }

void RequestShutdown() { OnSignal(0); }

void WaitForShutdown() {
  while (!g_requested.load()) {
    char c;
    if (g_pipe[0] >= 0) {
      (void)!read(g_pipe[0], &c, 1);
    } else {
      usleep(100000);
    }
  }
}

bool SleepUnlessShutdown(absl::Duration d) {
  absl::Time until = absl::Now() + d;
  while (absl::Now() < until) {
    if (g_requested.load()) return true;
    absl::SleepFor(std::min(absl::Milliseconds(50), until - absl::Now()));
  }
  return g_requested.load();
}

}  // namespace xc
