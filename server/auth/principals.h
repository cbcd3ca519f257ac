// Principals: who may call the server, with which roles, on which functions
// and with how many active tasks — read from the auth file (`--auth FILE`,
// config `auth:`) and matched against the bearer token or the client
// certificate of each call.
//
//   principals:
//     - name: alice                       # the owner of alice's tasks
//       token_sha256: 9f86d081...         # hex SHA-256 of alice's token
//       roles: [submit, read]             # default: [submit, read]
//       functions: ["echo", "report_*"]   # globs; default: all
//       max_active_tasks: 100             # default: 0 (no limit)
//     - name: ci-runner                   # no token: a client certificate
//       roles: [submit, read]             # whose subject CN is ci-runner
//     - name: ops
//       token_sha256: ...
//       roles: [admin]                    # every method, every task
//
// Roles: `read` may Get, Await, List, ListFunctions and watch in a Session;
// `submit` may Submit (also in a Session), Cancel and Delete; both only on
// the caller's own tasks. `admin` may do everything to every task.
#ifndef REMEX_SERVER_AUTH_PRINCIPALS_H_
#define REMEX_SERVER_AUTH_PRINCIPALS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace remex::auth {

// A set of roles, as bits.
enum Role : uint32_t {
  kRead = 1,
  kSubmit = 2,
  kAdmin = 4,
};

// One principal of the auth file, or the holder of a client certificate
// when there is no auth file. Immutable once loaded.
struct Principal {
  std::string name;
  uint32_t roles = kRead | kSubmit;
  // Glob patterns (fnmatch(3), no flags); empty: every function.
  std::vector<std::string> functions;
  // 0: no limit.
  int64_t max_active_tasks = 0;

  // True if it has one of the roles `any_of` (bits of Role); admin has all.
  bool HasAny(uint32_t any_of) const {
    return (roles & (any_of | kAdmin)) != 0;
  }
  bool SeesAllTasks() const { return (roles & kAdmin) != 0; }
  // PERMISSION_DENIED unless a pattern of `functions` matches `function`.
  absl::Status MaySubmit(absl::string_view function) const;
};

// The principals of one auth file, found by token or by name.
// Immutable; shared by the calls that authenticated against it.
class PrincipalSet {
 public:
  // INVALID_ARGUMENT naming the file, the entry and what is wrong: a name
  // that repeats or is empty, a token_sha256 that is not 64 hex digits or
  // repeats, an unknown role or key, a negative max_active_tasks.
  static absl::StatusOr<std::shared_ptr<const PrincipalSet>> LoadFile(
      const std::string& path);
  static absl::StatusOr<std::shared_ptr<const PrincipalSet>> Parse(
      absl::string_view yaml, const std::string& where);

  // Null if no principal has this token.
  const Principal* FindByToken(absl::string_view token) const;
  // Null if no principal has this name.
  const Principal* FindByName(absl::string_view name) const;
  size_t size() const { return principals_.size(); }

 private:
  std::vector<Principal> principals_;
  // Raw (32-byte) SHA-256 digests and names → index in principals_.
  absl::flat_hash_map<std::string, size_t> by_token_digest_;
  absl::flat_hash_map<std::string, size_t> by_name_;
};

// The hex SHA-256 of `token`: what the auth file stores.
std::string TokenSha256Hex(absl::string_view token);

// Why a call was not let in, for metrics and logs: a small fixed set.
enum class AuthFailure {
  kMissingCredentials,  // no token, no client certificate
  kMalformedHeader,     // `authorization` is not "Bearer TOKEN"
  kUnknownToken,
  kUnknownCertificate,  // a verified certificate whose CN is not listed
};
absl::string_view AuthFailureName(AuthFailure failure);

// What a call presents.
struct Credentials {
  // The `authorization` metadata; empty: none.
  absl::string_view authorization;
  // The verified client certificate's subject CN; empty: none.
  absl::string_view certificate_cn;
};

// The outcome of authenticating one call: a principal, or a failure.
struct Authentication {
  // Null when the call failed authentication (see `failure`). Shares
  // ownership of the principal set it came from, so a reload does not
  // pull it from under a running call.
  std::shared_ptr<const Principal> principal;
  AuthFailure failure = AuthFailure::kMissingCredentials;
  // UNAUTHENTICATED, with a message for the client; OK with a principal.
  absl::Status status;
};

// Decides who a call is. Three modes:
//   - no auth file and no client CA: open; Authenticate() must not be
//     called (enabled() is false);
//   - client CA without auth file: a verified certificate's CN is a
//     principal with roles submit and read, every function, no quota;
//   - auth file (with or without client CA): a valid bearer token is its
//     principal; without a token, a verified certificate's CN must name a
//     principal of the file.
//
// Thread-safe. Reload() swaps the principal set atomically: calls that
// authenticated before keep what they got.
class Authenticator {
 public:
  // An open authenticator (enabled() false).
  Authenticator() = default;
  // Loads `auth_file` (empty: none). REQUIRES: auth_file non-empty or
  // client_certificates.
  static absl::StatusOr<std::unique_ptr<Authenticator>> Create(
      std::string auth_file, bool client_certificates);

  bool enabled() const { return enabled_; }
  Authentication Authenticate(const Credentials& credentials) const;
  // Re-reads the auth file; on error keeps the current principals and
  // returns why. OK (and nothing read) without an auth file.
  absl::Status Reload();
  // Principals in the auth file; 0 without one.
  size_t principal_count() const;

 private:
  Authenticator(std::string auth_file, bool client_certificates,
                std::shared_ptr<const PrincipalSet> principals);
  std::shared_ptr<const PrincipalSet> principals() const;

  const bool enabled_ = false;
  const std::string auth_file_;
  const bool client_certificates_ = false;
  mutable absl::Mutex mu_;
  std::shared_ptr<const PrincipalSet> principals_ ABSL_GUARDED_BY(mu_);
};

}  // namespace remex::auth

#endif  // REMEX_SERVER_AUTH_PRINCIPALS_H_
