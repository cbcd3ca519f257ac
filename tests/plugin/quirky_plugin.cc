// A plugin that misbehaves in the ways the server must contain. Built once
// per QUIRK (see CMakeLists.txt):
//   none                   functions whose args check answers NOT_FOUND and
//                          whose body throws
//   ignored_failure        registers a function without a name and reports
//                          success anyway
//   unknown_pool           a function on a pool the server does not have
//   throwing_registration  its registration function throws
#include <stdexcept>
#include <string>

#include "absl/status/status.h"
#include "remex/plugin.h"

namespace {

using remex::plugin::Context;
using remex::plugin::Json;
using remex::plugin::Registrar;

absl::Status RegisterFunctions(Registrar& registrar) {
  const std::string quirk = QUIRK;
  if (quirk == "ignored_failure") {
    (void)registrar.Register(
        {.name = "", .body = [](Context&) { return absl::OkStatus(); }});
    return absl::OkStatus();
  }
  if (quirk == "unknown_pool") {
    return registrar.Register(
        {.name = "lost", .default_pool = "nowhere", .body = [](Context&) {
           return absl::OkStatus();
         }});
  }
  if (quirk == "throwing_registration") {
    throw std::runtime_error("no registration today");
  }
  absl::Status status = registrar.Register(
      {.name = "quirky_check",
       .check_args =
           [](const Json&, const std::string&) {
             return absl::NotFoundError("quirky_check: refuses everything");
           },
       .body = [](Context&) { return absl::OkStatus(); }});
  if (!status.ok()) return status;
  return registrar.Register(
      {.name = "quirky_throw", .body = [](Context&) -> absl::Status {
         throw std::runtime_error("quirky_throw: boom");
       }});
}

}  // namespace

REMEX_PLUGIN(RegisterFunctions);
