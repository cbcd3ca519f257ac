// A file under server/ that includes the SDK: check_includes must fail.
#include "sdk/src/future_state.h"
