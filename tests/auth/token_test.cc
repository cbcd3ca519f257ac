// The SDK sends ClientOptions::token as `authorization: Bearer TOKEN` with
// every call: unary RPCs and the Session stream, in plaintext and over TLS.
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "remex/client.h"
#include "remex/json.h"
#include "server/auth/tls.h"
#include "tests/client/fake_executor.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/tls_certs.h"

namespace remex {
namespace {

v1::Task Succeeded(const std::string& id) {
  v1::Task task;
  task.set_id(id);
  task.set_state(v1::SUCCEEDED);
  return task;
}

TEST(TokenTest, EveryUnaryCallCarriesTheToken) {
  testing::FakeExecutor fake;
  fake.Put(Succeeded("t1"));
  Client client(fake.address(), {.use_session = false, .token = "s3cret"});
  ASSERT_TRUE(client.Get("t1").ok());
  EXPECT_EQ(fake.authorization("Get"), "Bearer s3cret");
  ASSERT_TRUE(client.Await("t1", absl::Seconds(5)).ok());
  EXPECT_EQ(fake.authorization("Await"), "Bearer s3cret");
  ASSERT_TRUE(client.Cancel("t1").ok());
  EXPECT_EQ(fake.authorization("Cancel"), "Bearer s3cret");
  // The fake refuses submits, after it saw the call.
  EXPECT_FALSE(client.TrySubmit("echo").ok());
  EXPECT_EQ(fake.authorization("Submit"), "Bearer s3cret");
}

TEST(TokenTest, TheSessionStreamCarriesTheToken) {
  testing::FakeExecutor fake;
  Client client(fake.address(), {.token = "s3cret"});
  Future future = client.Submit("echo", Json(R"({"a": 1})"));
  future.wait();
  EXPECT_EQ(future.task().state(), v1::SUCCEEDED);
  EXPECT_EQ(
      future.task().result().struct_value().fields().at("a").number_value(), 1);
  EXPECT_EQ(fake.sessions(), 1);
  EXPECT_EQ(fake.authorization("Session"), "Bearer s3cret");
}

TEST(TokenTest, NoTokenNoAuthorization) {
  testing::FakeExecutor fake;
  fake.Put(Succeeded("t1"));
  Client client(fake.address());
  ASSERT_TRUE(client.Get("t1").ok());
  client.Submit("echo").wait();
  EXPECT_EQ(fake.calls("Get"), 1);
  EXPECT_EQ(fake.authorization("Get"), "");
  EXPECT_EQ(fake.sessions(), 1);
  EXPECT_EQ(fake.authorization("Session"), "");
}

TEST(TokenTest, TheTokenGoesOverTlsToo) {
  testing::TempDir dir;
  absl::StatusOr<testing::TestCa> ca = testing::TestCa::Create(dir.path());
  ASSERT_TRUE(ca.ok()) << ca.status();
  absl::StatusOr<testing::CertFiles> cert = ca->MakeServerCert();
  ASSERT_TRUE(cert.ok()) << cert.status();
  absl::StatusOr<std::unique_ptr<auth::ServerTls>> tls =
      auth::ServerTls::Create({.cert = cert->cert, .key = cert->key});
  ASSERT_TRUE(tls.ok()) << tls.status();
  testing::FakeExecutor fake((*tls)->MakeCredentials());
  fake.Put(Succeeded("t1"));
  Client client(fake.address(),
                {.tls_root_certs = ca->ca_pem(), .token = "over-tls"});
  ASSERT_TRUE(client.Get("t1").ok()) << client.Get("t1").status();
  EXPECT_EQ(fake.authorization("Get"), "Bearer over-tls");
  client.Submit("echo").wait();
  EXPECT_EQ(fake.authorization("Session"), "Bearer over-tls");
}

}  // namespace
}  // namespace remex
