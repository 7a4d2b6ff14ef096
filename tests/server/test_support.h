// Shared pieces of the server tests: temporary workspaces, a webhook receiver on loopback, a
// client, and a raw-socket client for requests no HTTP library sends (split, partial, pipelined).
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
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

// A blocking client socket with a receive buffer, reading whole responses.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawClient() { Close(); }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  bool connected() const { return connected_; }

  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  struct Response {
    int status = 0;
    std::string head;  // status line and headers
    std::string body;
    std::string Header(const std::string& name) const {
      size_t at = head.find("\r\n" + name + ": ");
      if (at == std::string::npos) return "";
      at += name.size() + 4;
      return head.substr(at, head.find("\r\n", at) - at);
    }
  };

  // One whole response (Content-Length framed); nullopt on timeout or close.
  // head_request: the response to a HEAD, whose Content-Length describes no body.
  std::optional<Response> Read(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000), bool head_request = false) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      size_t end = buffer_.find("\r\n\r\n");
      if (end != std::string::npos) {
        Response r;
        r.head = buffer_.substr(0, end + 2);
        r.status = std::atoi(buffer_.c_str() + 9);
        size_t length = 0;
        std::string cl = r.Header("Content-Length");
        if (!cl.empty()) length = std::stoul(cl);
        if (r.status == 100 || head_request) length = 0;
        if (buffer_.size() >= end + 4 + length) {
          r.body = buffer_.substr(end + 4, length);
          buffer_.erase(0, end + 4 + length);
          return r;
        }
      }
      if (!Fill(deadline)) return std::nullopt;
    }
  }

  // True when the server closes the connection (EOF) before the timeout.
  bool ClosedByServer(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (Fill(deadline)) {
    }
    return eof_;
  }

 private:
  bool Fill(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || eof_) return false;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char buf[65536];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string buffer_;
};

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
