#include "remex/task_result.h"

#include "remex/json.h"

namespace remex {

std::string TaskResult::json() const { return ToJson(value()); }

}  // namespace remex
