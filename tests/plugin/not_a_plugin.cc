// A shared library without the plugin entry points: the server must refuse
// to load it as a plugin.
extern "C" __attribute__((visibility("default"))) int not_a_plugin_answer() {
  return 42;
}
