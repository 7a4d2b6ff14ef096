// Shared pieces of the server tests: temporary workspaces, a webhook receiver on loopback, and
// a client.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "server/activation.h"
#include "server/server.h"

namespace shoal::testing {

inline std::string NowIso(int64_t offset_seconds = 0) {
  auto now = std::chrono::system_clock::now() + std::chrono::seconds(offset_seconds);
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
}

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("shoal_server_test_" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string Sub(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void WriteFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// Writes the workspace TOML under dir/db and starts a server on it (any free port); nullptr
// (with a test failure) when it does not start.
inline std::unique_ptr<Server> StartAt(const TempDir& dir, const std::string& toml) {
  WriteFile(dir.Sub("db/shoal.toml"), toml);
  ServerOptions o;
  o.db_dir = dir.Sub("db");
  o.port = 0;
  auto s = Server::Start(o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

// A free TCP port on loopback (bound then released).
inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

// A webhook receiver on loopback that records every delivery; `failing` makes it answer 503.
class Receiver {
 public:
  struct Delivery {
    std::string key;
    std::string body;
    bool signature_ok = false;
    std::chrono::steady_clock::time_point at;
  };

  explicit Receiver(int port, std::string secret = "") : port_(port), secret_(std::move(secret)) {}
  ~Receiver() { Stop(); }

  void Start() {
    server_ = std::make_unique<httplib::Server>();
    server_->set_tcp_nodelay(true);
    server_->set_keep_alive_max_count(1u << 20);
    server_->Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      if (failing.load()) {
        res.status = 503;
        return;
      }
      Delivery d;
      d.key = req.get_header_value("X-Shoal-Idempotency-Key");
      d.body = req.body;
      d.signature_ok = secret_.empty() ||
                       req.get_header_value("X-Shoal-Signature") == "sha256=" + HmacSha256Hex(secret_, req.body);
      d.at = std::chrono::steady_clock::now();
      {
        std::lock_guard lock(mu_);
        deliveries_.push_back(std::move(d));
      }
      res.status = 200;
    });
    ASSERT_TRUE(server_->bind_to_port("127.0.0.1", port_));
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  void Stop() {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
  }
  std::vector<Delivery> deliveries() const {
    std::lock_guard lock(mu_);
    return deliveries_;
  }
  size_t count() const {
    std::lock_guard lock(mu_);
    return deliveries_.size();
  }
  // Waits until pred(deliveries) holds or the timeout passes; returns whether it held.
  template <typename Pred>
  bool WaitFor(Pred pred, double seconds) const {
    auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (pred(deliveries())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return pred(deliveries());
  }

  std::atomic<bool> failing{false};

 private:
  int port_;
  std::string secret_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<Delivery> deliveries_;
};

}  // namespace shoal::testing
