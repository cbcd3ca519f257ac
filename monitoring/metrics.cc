#include "monitoring/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <exception>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "monitoring/process_collector.h"
#include "prometheus/exposer.h"
#include "prometheus/gauge.h"
#include "prometheus/text_serializer.h"

namespace remex::monitoring {

Metrics::Metrics(const BuildInfo& build)
    : registry_(std::make_shared<prometheus::Registry>()),
      stats_(std::make_shared<StatsCollector>()),
      process_(std::make_shared<ProcessCollector>()),
      tasks_(*registry_),
      store_(*registry_),
      grpc_(*registry_) {
  prometheus::BuildGauge()
      .Name("remex_build_info")
      .Help("Always 1; labelled with the server's version and revision.")
      .Register(*registry_)
      .Add({{"version", build.version}, {"revision", build.revision}})
      .Set(1);
}

std::vector<std::weak_ptr<prometheus::Collectable>> Metrics::collectables()
    const {
  return {registry_, stats_, process_};
}

std::string Metrics::Scrape() const {
  std::vector<prometheus::MetricFamily> families;
  for (const std::weak_ptr<prometheus::Collectable>& weak : collectables()) {
    if (auto collectable = weak.lock()) {
      std::vector<prometheus::MetricFamily> more = collectable->Collect();
      families.insert(families.end(), std::make_move_iterator(more.begin()),
                      std::make_move_iterator(more.end()));
    }
  }
  return prometheus::TextSerializer().Serialize(families);
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& listen, const Metrics& metrics) {
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  try {
    server->exposer_ = std::make_unique<prometheus::Exposer>(listen);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", listen, ": ", e.what()));
  }
  const std::vector<int> ports = server->exposer_->GetListeningPorts();
  if (ports.empty() || ports.front() <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", listen, ": no port bound"));
  }
  for (const std::weak_ptr<prometheus::Collectable>& collectable :
       metrics.collectables()) {
    server->exposer_->RegisterCollectable(collectable);
  }
  server->port_ = ports.front();
  const size_t colon = listen.rfind(':');
  server->address_ = absl::StrCat(
      colon == std::string::npos ? listen : listen.substr(0, colon), ":",
      server->port_);
  return server;
}

namespace {

// Connects to IPv4 `host` (127.0.0.1 for the wildcard) on `port` and
// disconnects at once; errors are ignored (other hosts are not knocked on).
void Knock(const std::string& host, int port) {
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_port = htons(static_cast<uint16_t>(port));
  const std::string ip = host.empty() || host == "0.0.0.0" ? "127.0.0.1" : host;
  if (inet_pton(AF_INET, ip.c_str(), &peer.sin_addr) != 1) return;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return;
  (void)connect(fd, reinterpret_cast<sockaddr*>(&peer), sizeof(peer));
  close(fd);
}

}  // namespace

MetricsServer::~MetricsServer() {
  // The exposer's HTTP server (civetweb) sees that it is stopped only when
  // its wait for connections returns, which takes up to a second when none
  // come; knocking on the port ends that wait at once.
  if (exposer_ == nullptr || port_ == 0) return;
  absl::Notification stopped;
  const std::string host = address_.substr(0, address_.rfind(':'));
  std::thread knocker([&stopped, &host, port = port_] {
    do {
      Knock(host, port);
    } while (!stopped.WaitForNotificationWithTimeout(absl::Milliseconds(5)));
  });
  exposer_.reset();
  stopped.Notify();
  knocker.join();
}

}  // namespace remex::monitoring
