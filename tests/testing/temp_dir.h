// A directory for one test's files (configs, inputs), removed with it.
#ifndef REMEX_TESTS_TESTING_TEMP_DIR_H_
#define REMEX_TESTS_TESTING_TEMP_DIR_H_

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace remex::testing {

// A fresh directory under the test's temp dir, removed by the destructor.
// Not thread-safe.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = std::filesystem::path(::testing::TempDir()) /
            absl::StrCat("remex_test_", getpid(), "_", counter++);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

  // Writes `text` to the file `name` in the directory; returns its path.
  std::string Write(absl::string_view name, absl::string_view text) const {
    const std::filesystem::path file = path_ / std::string(name);
    std::ofstream(file) << text;
    return file.string();
  }

 private:
  std::filesystem::path path_;
};

}  // namespace remex::testing

#endif  // REMEX_TESTS_TESTING_TEMP_DIR_H_
