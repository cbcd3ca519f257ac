// LLVMFuzzerInitialize for the targets that parse protobuf messages,
// linked into each of them (tests/fuzz/CMakeLists.txt).
#include <google/protobuf/stubs/logging.h>

// protobuf logs every string field that is not UTF-8 it refuses to parse:
// noise at thousands of inputs a second.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}
