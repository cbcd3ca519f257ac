// A plugin that claims another plugin API version than the server's: the
// server must refuse it at start. Its entry points are written out by hand
// (REMEX_PLUGIN would export the right version).
#include "remex/plugin.h"

extern "C" __attribute__((visibility("default"))) int
remex_plugin_api_version() {
  return remex::plugin::kApiVersion + 1000;
}

extern "C" __attribute__((visibility("default"))) void remex_plugin_register(
    remex::plugin::Registrar* registrar, absl::Status* status) {
  *status = absl::OkStatus();
}
