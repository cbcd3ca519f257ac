#include "server/executor/function_registry.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace remex::executor {

absl::Status FunctionRegistry::Register(FunctionSpec spec) {
  if (spec.name.empty()) {
    return absl::InvalidArgumentError("function name must not be empty");
  }
  if (!spec.body) {
    return absl::InvalidArgumentError(
        absl::StrCat("function '", spec.name, "' has no body"));
  }
  const std::string name = spec.name;
  if (!functions_.emplace(name, std::move(spec)).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("function '", name, "' is already registered"));
  }
  return absl::OkStatus();
}

const FunctionSpec* FunctionRegistry::Find(absl::string_view name) const {
  auto it = functions_.find(name);
  return it == functions_.end() ? nullptr : &it->second;
}

std::vector<const FunctionSpec*> FunctionRegistry::List() const {
  std::vector<const FunctionSpec*> specs;
  specs.reserve(functions_.size());
  for (const auto& [name, spec] : functions_) specs.push_back(&spec);
  return specs;
}

}  // namespace remex::executor
