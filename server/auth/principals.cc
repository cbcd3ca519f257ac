#include "server/auth/principals.h"

#include <fnmatch.h>
#include <openssl/evp.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/quote.h"
#include "yaml-cpp/yaml.h"

namespace remex::auth {
namespace {

constexpr absl::string_view kBearer = "Bearer ";
constexpr size_t kDigestBytes = 32;

std::string Sha256(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

bool IsHex(absl::string_view text) {
  for (char c : text) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

absl::StatusOr<uint32_t> ParseRoles(const YAML::Node& node,
                                    const std::string& where) {
  if (!node.IsSequence()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": roles must be a list of submit, read, admin"));
  }
  uint32_t roles = 0;
  for (const YAML::Node& item : node) {
    const std::string role = item.as<std::string>();
    if (role == "read") {
      roles |= kRead;
    } else if (role == "submit") {
      roles |= kSubmit;
    } else if (role == "admin") {
      roles |= kAdmin;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": unknown role ", common::Quote(role),
                       " (roles: submit, read, admin)"));
    }
  }
  return roles;
}

absl::Status CheckKeys(const YAML::Node& node, const std::string& where) {
  static constexpr absl::string_view kKeys[] = {
      "name", "token_sha256", "roles", "functions", "max_active_tasks"};
  for (const auto& entry : node) {
    const std::string key = entry.first.as<std::string>();
    bool known = false;
    for (absl::string_view k : kKeys) known = known || key == k;
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": unknown key ", common::Quote(key),
                       " (keys: ", absl::StrJoin(kKeys, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Principal> ParsePrincipal(const YAML::Node& node,
                                         const std::string& where,
                                         std::string& token_digest) {
  if (!node.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": not a map"));
  }
  if (absl::Status keys = CheckKeys(node, where); !keys.ok()) return keys;
  Principal principal;
  if (node["name"]) principal.name = node["name"].as<std::string>();
  if (principal.name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": needs a name"));
  }
  if (node["token_sha256"]) {
    const std::string hex =
        absl::AsciiStrToLower(node["token_sha256"].as<std::string>());
    if (hex.size() != 2 * kDigestBytes || !IsHex(hex)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where,
          ": token_sha256 must be 64 hex digits (the SHA-256 of the "
          "token, e.g. from: printf %s TOKEN | sha256sum)"));
    }
    token_digest = absl::HexStringToBytes(hex);
  }
  if (node["roles"]) {
    absl::StatusOr<uint32_t> roles = ParseRoles(node["roles"], where);
    if (!roles.ok()) return roles.status();
    principal.roles = *roles;
  }
  if (node["functions"]) {
    if (!node["functions"].IsSequence()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": functions must be a list of glob patterns"));
    }
    for (const YAML::Node& item : node["functions"]) {
      principal.functions.push_back(item.as<std::string>());
    }
  }
  if (node["max_active_tasks"]) {
    principal.max_active_tasks = node["max_active_tasks"].as<int64_t>();
    if (principal.max_active_tasks < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": max_active_tasks must not be negative"));
    }
  }
  return principal;
}

}  // namespace

absl::Status Principal::MaySubmit(absl::string_view function) const {
  if (functions.empty()) return absl::OkStatus();
  const std::string name(function);
  for (const std::string& pattern : functions) {
    if (fnmatch(pattern.c_str(), name.c_str(), 0) == 0) {
      return absl::OkStatus();
    }
  }
  return absl::PermissionDeniedError(
      absl::StrCat("principal ", common::Quote(this->name),
                   " may not submit function ", common::Quote(function)));
}

std::string TokenSha256Hex(absl::string_view token) {
  return absl::BytesToHexString(Sha256(token));
}

absl::StatusOr<std::shared_ptr<const PrincipalSet>> PrincipalSet::LoadFile(
    const std::string& path) {
  std::ifstream file(path);
  if (!file) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read auth file ", path));
  }
  std::stringstream text;
  text << file.rdbuf();
  return Parse(text.str(), path);
}

absl::StatusOr<std::shared_ptr<const PrincipalSet>> PrincipalSet::Parse(
    absl::string_view yaml, const std::string& where) {
  auto set = std::shared_ptr<PrincipalSet>(new PrincipalSet());
  try {
    const YAML::Node root = YAML::Load(std::string(yaml));
    if (!root.IsMap() || !root["principals"] ||
        !root["principals"].IsSequence()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": an auth file is a map with a list `principals`"));
    }
    size_t index = 0;
    for (const YAML::Node& node : root["principals"]) {
      const std::string entry =
          absl::StrCat(where, ": principals[", index++, "]");
      std::string digest;
      absl::StatusOr<Principal> principal = ParsePrincipal(node, entry, digest);
      if (!principal.ok()) return principal.status();
      const size_t at = set->principals_.size();
      if (!set->by_name_.emplace(principal->name, at).second) {
        return absl::InvalidArgumentError(absl::StrCat(
            entry, ": name ", common::Quote(principal->name), " repeats"));
      }
      if (!digest.empty() &&
          !set->by_token_digest_.emplace(std::move(digest), at).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(entry, ": token_sha256 repeats another principal's"));
      }
      set->principals_.push_back(*std::move(principal));
    }
  } catch (const YAML::Exception& error) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", error.what()));
  }
  return set;
}

const Principal* PrincipalSet::FindByToken(absl::string_view token) const {
  auto it = by_token_digest_.find(Sha256(token));
  return it == by_token_digest_.end() ? nullptr : &principals_[it->second];
}

const Principal* PrincipalSet::FindByName(absl::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &principals_[it->second];
}

absl::string_view AuthFailureName(AuthFailure failure) {
  switch (failure) {
    case AuthFailure::kMissingCredentials:
      return "missing_credentials";
    case AuthFailure::kMalformedHeader:
      return "malformed_header";
    case AuthFailure::kUnknownToken:
      return "unknown_token";
    case AuthFailure::kUnknownCertificate:
      return "unknown_certificate";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::Create(
    std::string auth_file, bool client_certificates) {
  std::shared_ptr<const PrincipalSet> principals;
  if (!auth_file.empty()) {
    absl::StatusOr<std::shared_ptr<const PrincipalSet>> loaded =
        PrincipalSet::LoadFile(auth_file);
    if (!loaded.ok()) return loaded.status();
    principals = *std::move(loaded);
  }
  return std::unique_ptr<Authenticator>(new Authenticator(
      std::move(auth_file), client_certificates, std::move(principals)));
}

Authenticator::Authenticator(std::string auth_file, bool client_certificates,
                             std::shared_ptr<const PrincipalSet> principals)
    : enabled_(true),
      auth_file_(std::move(auth_file)),
      client_certificates_(client_certificates),
      principals_(std::move(principals)) {}

std::shared_ptr<const PrincipalSet> Authenticator::principals() const {
  absl::MutexLock lock(&mu_);
  return principals_;
}

size_t Authenticator::principal_count() const {
  std::shared_ptr<const PrincipalSet> set = principals();
  return set == nullptr ? 0 : set->size();
}

absl::Status Authenticator::Reload() {
  if (auth_file_.empty()) return absl::OkStatus();
  absl::StatusOr<std::shared_ptr<const PrincipalSet>> loaded =
      PrincipalSet::LoadFile(auth_file_);
  if (!loaded.ok()) return loaded.status();
  absl::MutexLock lock(&mu_);
  principals_ = *std::move(loaded);
  return absl::OkStatus();
}

Authentication Authenticator::Authenticate(
    const Credentials& credentials) const {
  const auto fail = [](AuthFailure failure, std::string message) {
    return Authentication{.failure = failure,
                          .status = absl::UnauthenticatedError(message)};
  };
  std::shared_ptr<const PrincipalSet> set = principals();
  if (!credentials.authorization.empty()) {
    if (!absl::StartsWith(credentials.authorization, kBearer)) {
      return fail(AuthFailure::kMalformedHeader,
                  "the authorization metadata must be \"Bearer TOKEN\"");
    }
    const Principal* principal =
        set == nullptr ? nullptr
                       : set->FindByToken(
                             credentials.authorization.substr(kBearer.size()));
    if (principal == nullptr) {
      return fail(AuthFailure::kUnknownToken, "unknown bearer token");
    }
    return {.principal = std::shared_ptr<const Principal>(set, principal)};
  }
  if (!credentials.certificate_cn.empty()) {
    if (set == nullptr) {
      auto holder = std::make_shared<Principal>();
      holder->name = std::string(credentials.certificate_cn);
      return {.principal = std::move(holder)};
    }
    if (const Principal* principal =
            set->FindByName(credentials.certificate_cn)) {
      return {.principal = std::shared_ptr<const Principal>(set, principal)};
    }
    return fail(AuthFailure::kUnknownCertificate,
                absl::StrCat("the client certificate's CN ",
                             common::Quote(credentials.certificate_cn),
                             " is not a principal of the auth file"));
  }
  return fail(AuthFailure::kMissingCredentials,
              client_certificates_ && auth_file_.empty()
                  ? "a client certificate is required"
                  : "missing credentials: send \"authorization: Bearer "
                    "TOKEN\"");
}

}  // namespace remex::auth
