// auth::ServerTls: the checks of its files, and Reload on a live server
// (new handshakes get the new certificate, an open Session stream and open
// connections go on, a bad file is refused and the old material stays),
// and PeerCommonName under mTLS.
#include "server/auth/tls.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/channel.h"
#include "client/connection.h"
#include "client/session.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "remex/v1/executor.grpc.pb.h"
#include "tests/client/fake_executor.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/tls_certs.h"

namespace remex::auth {
namespace {

using testing::CertFiles;
using ::testing::HasSubstr;
using testing::TestCa;

constexpr absl::Duration kRpcTimeout = absl::Seconds(10);

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<TestCa> ca = TestCa::Create(dir_.path(), "CA A");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_a_.emplace(*std::move(ca));
    ca = TestCa::Create(dir_.path(), "CA B");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_b_.emplace(*std::move(ca));
    absl::StatusOr<CertFiles> cert = ca_a_->MakeServerCert("server A");
    ASSERT_TRUE(cert.ok()) << cert.status();
    server_a_ = *std::move(cert);
    cert = ca_b_->MakeServerCert("server B");
    ASSERT_TRUE(cert.ok()) << cert.status();
    server_b_ = *std::move(cert);
  }

  // Serves A's certificate from the live paths (tls_), and a fake server
  // behind it (fake_) that knows task t1, SUCCEEDED.
  void ServeLiveA() {
    Install(server_a_);
    absl::StatusOr<std::unique_ptr<ServerTls>> tls = ServerTls::Create(live_);
    ASSERT_TRUE(tls.ok()) << tls.status();
    tls_ = *std::move(tls);
    fake_ = std::make_unique<testing::FakeExecutor>(tls_->MakeCredentials());
    v1::Task task;
    task.set_id("t1");
    task.set_state(v1::SUCCEEDED);
    fake_->Put(task);
  }

  // Puts `files` where the server's files are (the "live" paths).
  void Install(const CertFiles& files) {
    live_.cert = dir_.Write("live.pem", files.cert_pem);
    live_.key = dir_.Write("live.key", files.key_pem);
  }

  // A connection over a new TLS channel that trusts `ca`.
  client::Connection ConnectTrusting(const TestCa& ca,
                                     const std::string& address) {
    return client::Connection(
        client::MakeChannel(address,
                            {.tls = true, .tls_root_certs = ca.ca_pem()}),
        kRpcTimeout);
  }

  testing::TempDir dir_;
  std::optional<TestCa> ca_a_;
  std::optional<TestCa> ca_b_;
  CertFiles server_a_;
  CertFiles server_b_;
  ServerTlsFiles live_;
  // Set by ServeLiveA.
  std::unique_ptr<ServerTls> tls_;
  std::unique_ptr<testing::FakeExecutor> fake_;
};

TEST_F(TlsTest, CreateAcceptsMatchingFiles) {
  absl::StatusOr<std::unique_ptr<ServerTls>> tls =
      ServerTls::Create({.cert = server_a_.cert,
                         .key = server_a_.key,
                         .client_ca = ca_a_->ca_file()});
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_TRUE((*tls)->requires_client_certificate());
  EXPECT_NE((*tls)->MakeCredentials(), nullptr);
}

TEST_F(TlsTest, CreateNamesAMissingFile) {
  const std::string missing = (dir_.path() / "missing.pem").string();
  absl::StatusOr<std::unique_ptr<ServerTls>> tls =
      ServerTls::Create({.cert = missing, .key = server_a_.key});
  ASSERT_FALSE(tls.ok());
  EXPECT_THAT(tls.status().message(),
              HasSubstr(absl::StrCat("TLS certificate ", missing)));
  EXPECT_THAT(tls.status().message(), HasSubstr("No such file"));
  tls = ServerTls::Create(
      {.cert = server_a_.cert, .key = server_a_.key, .client_ca = missing});
  ASSERT_FALSE(tls.ok());
  EXPECT_THAT(tls.status().message(),
              HasSubstr(absl::StrCat("TLS client CA ", missing)));
}

TEST_F(TlsTest, CreateRefusesAKeyOfAnotherCertificate) {
  absl::StatusOr<std::unique_ptr<ServerTls>> tls =
      ServerTls::Create({.cert = server_a_.cert, .key = server_b_.key});
  ASSERT_FALSE(tls.ok());
  EXPECT_EQ(
      tls.status().message(),
      absl::StrCat("TLS key ", server_b_.key,
                   " does not match the certificate in ", server_a_.cert));
}

TEST_F(TlsTest, CreateRefusesWhatIsNotPem) {
  const std::string text = dir_.Write("text.pem", "not a certificate\n");
  absl::StatusOr<std::unique_ptr<ServerTls>> tls =
      ServerTls::Create({.cert = text, .key = server_a_.key});
  ASSERT_FALSE(tls.ok());
  EXPECT_THAT(tls.status().message(),
              HasSubstr(absl::StrCat("TLS certificate ", text,
                                     ": no PEM certificate in it")));
  tls = ServerTls::Create({.cert = server_a_.cert, .key = text});
  ASSERT_FALSE(tls.ok());
  EXPECT_THAT(
      tls.status().message(),
      HasSubstr(absl::StrCat("TLS key ", text, ": no PEM private key")));
  // A PEM block whose body is broken.
  const std::string broken = dir_.Write(
      "broken.pem",
      "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  tls = ServerTls::Create(
      {.cert = server_a_.cert, .key = server_a_.key, .client_ca = broken});
  ASSERT_FALSE(tls.ok());
  EXPECT_THAT(tls.status().message(),
              HasSubstr(absl::StrCat("TLS client CA ", broken)));
}

TEST_F(TlsTest, ReloadServesTheNewCertificateToNewConnectionsOnly) {
  ASSERT_NO_FATAL_FAILURE(ServeLiveA());

  // Before: clients that trust A get in, clients that trust only B do not.
  client::Connection trusts_a = ConnectTrusting(*ca_a_, fake_->address());
  ASSERT_TRUE(trusts_a.Get("t1").ok()) << trusts_a.Get("t1").status();
  client::Session session(
      client::MakeChannel(fake_->address(),
                          {.tls = true, .tls_root_certs = ca_a_->ca_pem()}),
      16);
  std::shared_ptr<client::TaskSlot> held = session.Submit([] {
    v1::SubmitRequest request;
    request.set_function("hold");
    return request;
  }());
  ASSERT_TRUE(held->WaitAccepted(absl::Now() + kRpcTimeout).ok());
  EXPECT_EQ(ConnectTrusting(*ca_b_, fake_->address()).Get("t1").status().code(),
            absl::StatusCode::kUnavailable);

  Install(server_b_);
  ASSERT_TRUE(tls_->Reload().ok());

  // New connections get B.
  EXPECT_TRUE(ConnectTrusting(*ca_b_, fake_->address()).Get("t1").ok());
  EXPECT_EQ(ConnectTrusting(*ca_a_, fake_->address()).Get("t1").status().code(),
            absl::StatusCode::kUnavailable);
  // The connection and the Session stream opened under A go on.
  EXPECT_TRUE(trusts_a.Get("t1").ok());
  v1::SubmitRequest echo;
  echo.set_function("echo");
  std::shared_ptr<client::TaskSlot> echoed = session.Submit(echo);
  ASSERT_TRUE(echoed->WaitSettled(absl::Now() + kRpcTimeout));
  absl::StatusOr<v1::Task> echo_task = echoed->Take();
  ASSERT_TRUE(echo_task.ok()) << echo_task.status();
  EXPECT_EQ(echo_task->state(), v1::SUCCEEDED);
  EXPECT_FALSE(held->settled());
  EXPECT_EQ(fake_->sessions(), 1);
}

TEST_F(TlsTest, ReloadRefusesBadFilesAndKeepsServing) {
  ASSERT_NO_FATAL_FAILURE(ServeLiveA());

  // B's certificate with A's key: refused.
  dir_.Write("live.pem", server_b_.cert_pem);
  absl::Status reloaded = tls_->Reload();
  EXPECT_EQ(reloaded.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(reloaded.message(),
              HasSubstr(absl::StrCat("TLS key ", live_.key,
                                     " does not match the certificate")));
  EXPECT_THAT(reloaded.message(), HasSubstr("stay in use"));
  // The key gone: refused.
  std::filesystem::remove(live_.key);
  reloaded = tls_->Reload();
  EXPECT_THAT(reloaded.message(), HasSubstr(absl::StrCat("TLS key ", live_.key,
                                                         ": cannot read it")));
  // New connections still get A.
  EXPECT_TRUE(ConnectTrusting(*ca_a_, fake_->address()).Get("t1").ok());
  EXPECT_EQ(ConnectTrusting(*ca_b_, fake_->address()).Get("t1").status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(TlsTest, ReloadSwapsTheClientCa) {
  const std::string client_ca = dir_.Write("clients.pem", ca_a_->ca_pem());
  absl::StatusOr<std::unique_ptr<ServerTls>> tls = ServerTls::Create(
      {.cert = server_a_.cert, .key = server_a_.key, .client_ca = client_ca});
  ASSERT_TRUE(tls.ok()) << tls.status();
  testing::FakeExecutor fake((*tls)->MakeCredentials());
  fake.Put([] {
    v1::Task task;
    task.set_id("t1");
    return task;
  }());
  absl::StatusOr<CertFiles> of_a = ca_a_->MakeClientCert("alice");
  ASSERT_TRUE(of_a.ok()) << of_a.status();
  absl::StatusOr<CertFiles> of_b = ca_b_->MakeClientCert("bob");
  ASSERT_TRUE(of_b.ok()) << of_b.status();
  const auto get_code = [&](const CertFiles& client_cert) {
    client::Connection connection(
        client::MakeChannel(fake.address(),
                            {.tls = true,
                             .tls_root_certs = ca_a_->ca_pem(),
                             .tls_cert_chain = client_cert.cert_pem,
                             .tls_private_key = client_cert.key_pem}),
        kRpcTimeout);
    return connection.Get("t1").status().code();
  };
  EXPECT_EQ(get_code(*of_a), absl::StatusCode::kOk);
  EXPECT_EQ(get_code(*of_b), absl::StatusCode::kUnavailable);

  dir_.Write("clients.pem", ca_b_->ca_pem());
  ASSERT_TRUE((*tls)->Reload().ok());
  EXPECT_EQ(get_code(*of_b), absl::StatusCode::kOk);
  EXPECT_EQ(get_code(*of_a), absl::StatusCode::kUnavailable);
}

TEST_F(TlsTest, TheClientChecksTheNameItIsGiven) {
  absl::StatusOr<std::unique_ptr<ServerTls>> tls =
      ServerTls::Create({.cert = server_a_.cert, .key = server_a_.key});
  ASSERT_TRUE(tls.ok()) << tls.status();
  testing::FakeExecutor fake((*tls)->MakeCredentials());
  fake.Put([] {
    v1::Task task;
    task.set_id("t1");
    return task;
  }());
  const auto get_code = [&](const std::string& server_name) {
    client::Connection connection(
        client::MakeChannel(fake.address(), {.tls = true,
                                             .tls_root_certs = ca_a_->ca_pem(),
                                             .tls_server_name = server_name}),
        kRpcTimeout);
    return connection.Get("t1").status().code();
  };
  EXPECT_EQ(get_code(""), absl::StatusCode::kOk);  // the address: 127.0.0.1
  EXPECT_EQ(get_code("localhost"), absl::StatusCode::kOk);
  EXPECT_EQ(get_code("elsewhere.example"), absl::StatusCode::kUnavailable);
}

// Answers Get with a task whose id is the caller's certificate CN.
class WhoAmI final : public v1::Executor::Service {
 public:
  grpc::Status Get(grpc::ServerContext* context, const v1::GetRequest*,
                   v1::Task* response) override {
    response->set_id(PeerCommonName(*context));
    return grpc::Status::OK;
  }
};

TEST_F(TlsTest, PeerCommonNameIsTheVerifiedClientCertificatesCn) {
  absl::StatusOr<std::unique_ptr<ServerTls>> tls =
      ServerTls::Create({.cert = server_a_.cert,
                         .key = server_a_.key,
                         .client_ca = ca_a_->ca_file()});
  ASSERT_TRUE(tls.ok()) << tls.status();
  const std::shared_ptr<grpc::ServerCredentials> credentials =
      (*tls)->MakeCredentials();
  WhoAmI service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", credentials, &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(port, 0);
  const std::string address = absl::StrCat("127.0.0.1:", port);

  absl::StatusOr<CertFiles> alice = ca_a_->MakeClientCert("alice");
  ASSERT_TRUE(alice.ok()) << alice.status();
  client::Connection connection(
      client::MakeChannel(address, {.tls = true,
                                    .tls_root_certs = ca_a_->ca_pem(),
                                    .tls_cert_chain = alice->cert_pem,
                                    .tls_private_key = alice->key_pem}),
      kRpcTimeout);
  absl::StatusOr<v1::Task> who = connection.Get("x");
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->id(), "alice");
  // Without a client certificate: no handshake.
  EXPECT_EQ(ConnectTrusting(*ca_a_, address).Get("x").status().code(),
            absl::StatusCode::kUnavailable);
  server->Shutdown(std::chrono::system_clock::now());
}

}  // namespace
}  // namespace remex::auth
