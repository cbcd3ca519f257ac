// remex/remex.h — the whole remex C++ SDK.
#ifndef REMEX_REMEX_H_
#define REMEX_REMEX_H_

#include "remex/client.h"        // IWYU pragma: export
#include "remex/continuation.h"  // IWYU pragma: export
#include "remex/errors.h"        // IWYU pragma: export
#include "remex/executor.h"      // IWYU pragma: export
#include "remex/future.h"        // IWYU pragma: export
#include "remex/json.h"          // IWYU pragma: export
#include "remex/task_result.h"   // IWYU pragma: export

#endif  // REMEX_REMEX_H_
