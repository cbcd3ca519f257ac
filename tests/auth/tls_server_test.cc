// remex-server with --tls-cert, --tls-key and --tls-client-ca, as a user
// runs it: the SDK and the CLI over TLS and mTLS, plaintext and strangers
// refused, bad TLS flags stopping the server with one line; and the CLI's
// token (--token, $REMEX_TOKEN) as a fake server sees it.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "remex/client.h"
#include "remex/json.h"
#include "tests/client/fake_executor.h"
#include "tests/testing/server_test.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/tls_certs.h"

namespace remex {
namespace {

using testing::CertFiles;
using ::testing::HasSubstr;
using testing::TestCa;

constexpr absl::Duration kCommandTimeout = absl::Seconds(30);

// Submits echo({"x": 1}) through `client` and checks the result.
void ExpectEchoWorks(Client& client) {
  absl::StatusOr<Future> future = client.TrySubmit("echo", Json(R"({"x": 1})"));
  ASSERT_TRUE(future.ok()) << future.status();
  future->wait();
  const v1::Task task = future->task();
  EXPECT_EQ(task.state(), v1::SUCCEEDED) << task.DebugString();
  EXPECT_EQ(task.result().struct_value().fields().at("x").number_value(), 1);
}

// The code of a call through `client` (a Get of an unknown id: NOT_FOUND
// once connected).
absl::StatusCode GetCode(Client& client) {
  return client.Get("no-such-task").status().code();
}

class TlsServerTest : public testing::ServerTest {
 protected:
  TlsServerTest() : ServerTest(absl::Seconds(20)) {}

  void SetUp() override {
    absl::StatusOr<TestCa> ca = TestCa::Create(dir_.path(), "remex CA");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_.emplace(*std::move(ca));
    ca = TestCa::Create(dir_.path(), "stranger CA");
    ASSERT_TRUE(ca.ok()) << ca.status();
    stranger_ca_.emplace(*std::move(ca));
    absl::StatusOr<CertFiles> cert = ca_->MakeServerCert();
    ASSERT_TRUE(cert.ok()) << cert.status();
    server_cert_ = *std::move(cert);
  }

  std::vector<std::string> TlsFlags() const {
    return {"--tls-cert", server_cert_.cert, "--tls-key", server_cert_.key};
  }

  // "localhost:PORT" of the server.
  std::string LocalhostAddress() {
    return absl::StrCat(
        "localhost:",
        std::vector<std::string>(absl::StrSplit(server().address(), ':'))
            .back());
  }

  // Runs `remex --server ADDRESS ARGS...`.
  testing::ProcessResult Remex(std::vector<std::string> args,
                               const std::string& address,
                               const std::vector<std::string>& env = {}) {
    args.insert(args.begin(), {REMEX_CLI_PATH, "--server", address});
    absl::StatusOr<testing::ProcessResult> result =
        testing::RunProcess(args, kCommandTimeout, env);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *std::move(result) : testing::ProcessResult();
  }

  testing::TempDir dir_;
  std::optional<TestCa> ca_;
  std::optional<TestCa> stranger_ca_;
  CertFiles server_cert_;
};

TEST_F(TlsServerTest, SdkWorksOverTls) {
  ASSERT_NO_FATAL_FAILURE(StartServer(TlsFlags()));
  Client client(server().address(), {.tls_root_certs = ca_->ca_pem()});
  ExpectEchoWorks(client);
  // By name too (the certificate names both).
  Client by_name(LocalhostAddress(), {.tls_root_certs = ca_->ca_pem()});
  EXPECT_EQ(GetCode(by_name), absl::StatusCode::kNotFound);
  // Unary calls, without the session.
  Client unary(server().address(),
               {.use_session = false, .tls_root_certs = ca_->ca_pem()});
  ExpectEchoWorks(unary);
}

TEST_F(TlsServerTest, PlaintextClientsAndOtherCasAreRefused) {
  ASSERT_NO_FATAL_FAILURE(StartServer(TlsFlags()));
  Client plaintext(server().address(), {.keepalive = absl::Seconds(5)});
  EXPECT_EQ(GetCode(plaintext), absl::StatusCode::kUnavailable);
  EXPECT_EQ(plaintext.TrySubmit("echo").status().code(),
            absl::StatusCode::kUnavailable);
  Client trusts_stranger(server().address(),
                         {.tls_root_certs = stranger_ca_->ca_pem()});
  EXPECT_EQ(GetCode(trusts_stranger), absl::StatusCode::kUnavailable);
}

TEST_F(TlsServerTest, MtlsNeedsAClientCertificateOfTheClientCa) {
  std::vector<std::string> flags = TlsFlags();
  flags.insert(flags.end(), {"--tls-client-ca", ca_->ca_file()});
  ASSERT_NO_FATAL_FAILURE(StartServer(flags));
  absl::StatusOr<CertFiles> alice = ca_->MakeClientCert("alice");
  ASSERT_TRUE(alice.ok()) << alice.status();
  absl::StatusOr<CertFiles> mallory = stranger_ca_->MakeClientCert("mallory");
  ASSERT_TRUE(mallory.ok()) << mallory.status();

  Client anonymous(server().address(), {.tls_root_certs = ca_->ca_pem()});
  EXPECT_EQ(GetCode(anonymous), absl::StatusCode::kUnavailable);
  Client stranger(server().address(), {.tls_root_certs = ca_->ca_pem(),
                                       .tls_cert_chain = mallory->cert_pem,
                                       .tls_private_key = mallory->key_pem});
  EXPECT_EQ(GetCode(stranger), absl::StatusCode::kUnavailable);
  Client member(server().address(), {.tls_root_certs = ca_->ca_pem(),
                                     .tls_cert_chain = alice->cert_pem,
                                     .tls_private_key = alice->key_pem});
  ExpectEchoWorks(member);
}

TEST_F(TlsServerTest, CliWorksOverTlsAndMtls) {
  std::vector<std::string> flags = TlsFlags();
  flags.insert(flags.end(), {"--tls-client-ca", ca_->ca_file()});
  ASSERT_NO_FATAL_FAILURE(StartServer(flags));
  absl::StatusOr<CertFiles> alice = ca_->MakeClientCert("alice");
  ASSERT_TRUE(alice.ok()) << alice.status();

  testing::ProcessResult result =
      Remex({"--tls-ca", ca_->ca_file(), "--tls-cert", alice->cert, "--tls-key",
             alice->key, "submit", "echo", "--args", R"({"x": 1})", "--wait"},
            server().address());
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("SUCCEEDED"));

  // No client certificate: the RPC fails (exit 1) with one line.
  result = Remex({"--tls-ca", ca_->ca_file(), "functions"}, server().address());
  EXPECT_EQ(result.exit_code, 1) << result.out;
  EXPECT_TRUE(absl::StartsWith(result.err, "remex: UNAVAILABLE: "))
      << result.err;

  // A certificate without its key is a usage error.
  result = Remex(
      {"--tls-ca", ca_->ca_file(), "--tls-cert", alice->cert, "functions"},
      server().address());
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.err, HasSubstr("--tls-cert and --tls-key go together"));
}

TEST_F(TlsServerTest, CliOverTlsWithoutClientCertificates) {
  ASSERT_NO_FATAL_FAILURE(StartServer(TlsFlags()));
  testing::ProcessResult result =
      Remex({"--tls-ca", ca_->ca_file(), "functions"}, LocalhostAddress());
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("\"echo\""));
  // Plaintext to a TLS server.
  result = Remex({"functions"}, server().address());
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(absl::StartsWith(result.err, "remex: UNAVAILABLE: "))
      << result.err;
}

// The one line a server that cannot start prints, and its exit code.
void ExpectOneLineExit(const std::vector<std::string>& args, int exit_code,
                       const std::string& line) {
  std::vector<std::string> all = {"--listen", "127.0.0.1:0", "--metrics-listen",
                                  "none"};
  all.insert(all.end(), args.begin(), args.end());
  const testing::ProcessResult result = testing::RunServerExpectingExit(all);
  EXPECT_EQ(result.exit_code, exit_code) << result.err;
  EXPECT_EQ(result.err, "remex-server: " + line + "\n");
  EXPECT_EQ(result.out, "");
}

TEST_F(TlsServerTest, BadTlsFlagsStopTheServerWithOneLine) {
  absl::StatusOr<CertFiles> other = ca_->MakeServerCert("other");
  ASSERT_TRUE(other.ok()) << other.status();
  const std::string missing = (dir_.path() / "missing.pem").string();
  // Flags that do not go together: a usage error (exit 2).
  ExpectOneLineExit({"--tls-cert", server_cert_.cert}, 2,
                    "TLS needs both a certificate and its key: give "
                    "--tls-cert and --tls-key (config tls_cert, tls_key) "
                    "together");
  ExpectOneLineExit({"--tls-client-ca", ca_->ca_file()}, 2,
                    "--tls-client-ca (config tls_client_ca) needs TLS: give "
                    "--tls-cert and --tls-key too");
  // Files that are wrong: the server cannot start (exit 1).
  ExpectOneLineExit({"--tls-cert", missing, "--tls-key", server_cert_.key}, 1,
                    absl::StrCat("TLS certificate ", missing,
                                 ": cannot read it (No such file or "
                                 "directory)"));
  ExpectOneLineExit(
      {"--tls-cert", server_cert_.cert, "--tls-key", other->key}, 1,
      absl::StrCat("TLS key ", other->key,
                   " does not match the certificate in ", server_cert_.cert));
  ExpectOneLineExit({"--tls-cert", server_cert_.cert, "--tls-key",
                     server_cert_.key, "--tls-client-ca", missing},
                    1,
                    absl::StrCat("TLS client CA ", missing,
                                 ": cannot read it (No such file or "
                                 "directory)"));
}

TEST_F(TlsServerTest, ConfigFileTlsKeysWork) {
  const std::string config = WriteFile(
      "remex.yaml", absl::StrCat("tls_cert: ", server_cert_.cert,
                                 "\ntls_key: ", server_cert_.key, "\n"));
  ASSERT_NO_FATAL_FAILURE(StartServer({"--config", config}));
  Client client(server().address(), {.tls_root_certs = ca_->ca_pem()});
  ExpectEchoWorks(client);
}

// The CLI's token, as a (fake, in-process) server sees it.
TEST(CliTokenTest, FlagAndEnvironmentTokens) {
  testing::FakeExecutor fake;
  v1::Task task;
  task.set_id("t1");
  task.set_state(v1::SUCCEEDED);
  fake.Put(task);
  const auto remex = [&](std::vector<std::string> args,
                         const std::vector<std::string>& env) {
    args.insert(args.begin(), {REMEX_CLI_PATH, "--server", fake.address()});
    absl::StatusOr<testing::ProcessResult> result =
        testing::RunProcess(args, kCommandTimeout, env);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->exit_code, 0) << result->err;
  };
  remex({"get", "t1"}, {"REMEX_TOKEN=from-env"});
  EXPECT_EQ(fake.authorization("Get"), "Bearer from-env");
  remex({"get", "t1", "--token", "from-flag"}, {"REMEX_TOKEN=from-env"});
  EXPECT_EQ(fake.authorization("Get"), "Bearer from-flag");
  remex({"get", "t1"}, {"REMEX_TOKEN="});
  EXPECT_EQ(fake.authorization("Get"), "");
}

}  // namespace
}  // namespace remex
