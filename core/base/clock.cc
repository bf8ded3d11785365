#include "core/base/clock.h"

namespace xc {

RealClock* RealClock::Get() {
  static RealClock* clock = new RealClock();
  return clock;
}

}  // namespace xc
