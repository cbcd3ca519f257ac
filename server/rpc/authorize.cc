#include "server/rpc/authorize.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/log.h"
#include "common/quote.h"
#include "server/auth/tls.h"

namespace remex::rpc {
namespace {

// "read", "read or submit", ...
std::string RoleNames(uint32_t roles) {
  std::vector<absl::string_view> names;
  if (roles & auth::kRead) names.push_back("read");
  if (roles & auth::kSubmit) names.push_back("submit");
  if (roles & auth::kAdmin) names.push_back("admin");
  return absl::StrJoin(names, " or ");
}

absl::string_view AuthorizationOf(const grpc::ServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return {};
  return absl::string_view(it->second.data(), it->second.size());
}

}  // namespace

executor::Caller CallerIdentity::caller() const {
  if (principal_ == nullptr) return executor::Caller();
  return executor::Caller{.name = principal_->name,
                          .sees_all_tasks = principal_->SeesAllTasks(),
                          .max_active_tasks = principal_->max_active_tasks};
}

absl::Status CallerIdentity::Require(uint32_t any_of) const {
  if (principal_ == nullptr || principal_->HasAny(any_of)) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("principal ", common::Quote(principal_->name),
                   " lacks the role ", RoleNames(any_of)));
}

absl::Status CallerIdentity::MaySubmit(const std::string& function) const {
  if (principal_ == nullptr) return absl::OkStatus();
  if (absl::Status status = Require(auth::kSubmit); !status.ok()) {
    return status;
  }
  return principal_->MaySubmit(function);
}

void AuthFailureLog::Record(auth::AuthFailure failure,
                            const std::string& peer) {
  const absl::Time now = absl::Now();
  int64_t count = 0;
  {
    absl::MutexLock lock(&mu_);
    ++unlogged_;
    if (now - last_line_ < period_) return;
    last_line_ = now;
    count = std::exchange(unlogged_, 0);
  }
  // One line per period at most, whatever the rate of failures.
  const absl::string_view reason = auth::AuthFailureName(failure);
  log::Warn("auth_failures",
            absl::StrCat(count,
                         " failed authentication(s) since the last report; "
                         "latest: ",
                         reason, " from ", common::Quote(peer)),
            {{"count", count},
             {"reason", reason},
             {"peer", peer},
             {"period", period_}});
}

absl::StatusOr<CallerIdentity> Authorize(const AuthEnv& env,
                                         const grpc::ServerContext& context,
                                         uint32_t any_of) {
  if (env.authenticator == nullptr || !env.authenticator->enabled()) {
    return CallerIdentity();
  }
  const std::string certificate_cn = auth::PeerCommonName(context);
  auth::Authentication authentication = env.authenticator->Authenticate(
      {.authorization = AuthorizationOf(context),
       .certificate_cn = certificate_cn});
  if (authentication.principal == nullptr) {
    if (env.metrics != nullptr) {
      env.metrics->RecordAuthFailure(
          auth::AuthFailureName(authentication.failure));
    }
    if (env.failure_log != nullptr) {
      env.failure_log->Record(authentication.failure, context.peer());
    }
    return authentication.status;
  }
  CallerIdentity identity(std::move(authentication.principal));
  if (absl::Status allowed = identity.Require(any_of); !allowed.ok()) {
    return allowed;
  }
  return identity;
}

}  // namespace remex::rpc
