#include "server/server_config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace shoal {

namespace {

Status ReadStrings(const toml::table& t, std::string_view key, const std::string& where,
                   std::vector<std::string>* out) {
  const toml::node* node = t.get(key);
  if (node == nullptr) return Status::OK();
  const toml::array* arr = node->as_array();
  if (arr == nullptr) return Status::ParseError(where + "." + std::string(key) + " must be an array of strings");
  for (const toml::node& item : *arr) {
    auto s = item.value<std::string>();
    if (!s) return Status::ParseError(where + "." + std::string(key) + " must be an array of strings");
    out->push_back(*s);
  }
  return Status::OK();
}

template <typename T>
Status ReadNumber(const toml::table& t, std::string_view key, const std::string& where, T* out,
                  double min_value) {
  const toml::node* node = t.get(key);
  if (node == nullptr) return Status::OK();
  auto v = node->value<double>();
  if (!v || *v < min_value) {
    char min_text[32];
    std::snprintf(min_text, sizeof min_text, "%g", min_value);
    return Status::ParseError(where + "." + std::string(key) + " must be a number >= " + min_text);
  }
  *out = static_cast<T>(*v);
  return Status::OK();
}

bool ValidName(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

// A secret or token given inline or through an environment variable (key + "_env").
Result<std::string> ReadSecret(const toml::table& t, std::string_view key, const std::string& where) {
  if (auto v = t[key].value<std::string>()) return *v;
  std::string env_key = std::string(key) + "_env";
  if (auto env = t[env_key].value<std::string>()) {
    const char* value = std::getenv(env->c_str());
    if (value == nullptr) {
      return Status::ParseError(where + "." + env_key + ": environment variable " + *env + " is not set");
    }
    return std::string(value);
  }
  return std::string();
}

}  // namespace

bool IsLoopbackAddress(std::string_view address) {
  return address == "localhost" || address == "::1" || address.substr(0, 4) == "127.";
}

int EffectiveIoThreads(const ServerConfig& config, int cores) {
  if (config.io_threads > 0) return config.io_threads;
  return std::clamp(cores - 1, 1, 8);
}

Result<ServerConfig> ParseServerConfig(const toml::table& root) {
  ServerConfig config;
  if (const toml::table* server = root["server"].as_table()) {
    const std::string where = "[server]";
    if (const toml::node* bind = server->get("bind")) {
      auto v = bind->value<std::string>();
      if (!v) return Status::ParseError("[server].bind must be a string");
      config.bind = *v;
    }
    SHOAL_RETURN_IF_ERROR(ReadNumber(*server, "port", where, &config.port, 0));
    SHOAL_RETURN_IF_ERROR(ReadNumber(*server, "max_body_bytes", where, &config.max_body_bytes, 1));
    SHOAL_RETURN_IF_ERROR(ReadNumber(*server, "max_batch_events", where, &config.max_batch_events, 1));
    SHOAL_RETURN_IF_ERROR(ReadNumber(*server, "max_connections", where, &config.max_connections, 1));
    SHOAL_RETURN_IF_ERROR(
        ReadNumber(*server, "idle_timeout_seconds", where, &config.idle_timeout_seconds, 0.01));
    SHOAL_RETURN_IF_ERROR(
        ReadNumber(*server, "read_timeout_seconds", where, &config.read_timeout_seconds, 0.01));
    SHOAL_RETURN_IF_ERROR(ReadNumber(*server, "max_pending_output_bytes", where,
                                     &config.max_pending_output_bytes, 65536));
    if (server->get("http_threads") != nullptr) {
      return Status::ParseError(
          "[server].http_threads is no longer read: connections are no longer served by a thread "
          "each; use io_threads (epoll loops, default one less than the cores) and worker_threads (slow requests, "
          "default 4) instead");
    }
    SHOAL_RETURN_IF_ERROR(ReadNumber(*server, "io_threads", where, &config.io_threads, 0));
    SHOAL_RETURN_IF_ERROR(ReadNumber(*server, "worker_threads", where, &config.worker_threads, 1));
    if (const toml::node* commit_thread = server->get("commit_thread")) {
      if (!commit_thread->is_boolean()) return Status::ParseError("[server].commit_thread must be true or false");
      config.commit_thread = commit_thread->value_or(true);
    }
    SHOAL_RETURN_IF_ERROR(ReadNumber(*server, "max_group_events", where, &config.max_group_events, 1));
    SHOAL_RETURN_IF_ERROR(ReadNumber(*server, "checkpoint_seconds", where, &config.checkpoint_seconds, 0));
    if (auto cc = (*server)["default_country_code"].value<std::string>()) {
      config.default_country_code = *cc;
      if (!cc->empty() && cc->front() == '+') config.default_country_code.erase(0, 1);
    }
    if (const toml::node* tokens = server->get("tokens")) {
      const toml::array* arr = tokens->as_array();
      if (arr == nullptr) return Status::ParseError("[[server.tokens]] must be an array of tables");
      for (size_t i = 0; i < arr->size(); ++i) {
        const toml::table* t = (*arr)[i].as_table();
        std::string at = "[[server.tokens]] entry " + std::to_string(i);
        if (t == nullptr) return Status::ParseError(at + " is not a table");
        ApiToken token;
        SHOAL_ASSIGN_OR_RETURN(token.token, ReadSecret(*t, "token", at));
        if (token.token.size() < 16) {
          return Status::ParseError(at + ": token (or token_env) must hold at least 16 characters");
        }
        std::vector<std::string> scopes;
        SHOAL_RETURN_IF_ERROR(ReadStrings(*t, "scopes", at, &scopes));
        for (const std::string& s : scopes) {
          if (s == "read") token.read = true;
          else if (s == "write") token.write = true;
          else return Status::ParseError(at + ": unknown scope '" + s + "' (read, write)");
        }
        if (!token.read && !token.write) return Status::ParseError(at + ": scopes must name read and/or write");
        config.tokens.push_back(std::move(token));
      }
    }
  }
  if (const toml::node* dests = root.get("destinations")) {
    const toml::array* arr = dests->as_array();
    if (arr == nullptr) return Status::ParseError("[[destinations]] must be an array of tables");
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::table* t = (*arr)[i].as_table();
      std::string at = "[[destinations]] entry " + std::to_string(i);
      if (t == nullptr) return Status::ParseError(at + " is not a table");
      WebhookDestination d;
      d.name = (*t)["name"].value_or(std::string());
      if (!ValidName(d.name)) return Status::ParseError(at + ": name must be [A-Za-z0-9_-]+");
      at = "destination '" + d.name + "'";
      std::string type = (*t)["type"].value_or(std::string("webhook"));
      if (type != "webhook") return Status::ParseError(at + ": type must be \"webhook\"");
      d.url = (*t)["url"].value_or(std::string());
      if (d.url.rfind("http://", 0) != 0) {
        return Status::ParseError(at + ": url must start with http:// (https is not supported)");
      }
      SHOAL_ASSIGN_OR_RETURN(d.secret, ReadSecret(*t, "secret", at));
      d.marketing = (*t)["marketing"].value_or(true);
      std::vector<std::string> list;
      SHOAL_RETURN_IF_ERROR(ReadStrings(*t, "audiences", at, &list));
      for (const auto& a : list) d.memberships.push_back("audience:" + a);
      list.clear();
      SHOAL_RETURN_IF_ERROR(ReadStrings(*t, "segments", at, &list));
      for (const auto& s : list) d.memberships.push_back("segment:" + s);
      SHOAL_RETURN_IF_ERROR(ReadStrings(*t, "memberships", at, &d.memberships));
      SHOAL_RETURN_IF_ERROR(ReadNumber(*t, "max_attempts", at, &d.max_attempts, 1));
      SHOAL_RETURN_IF_ERROR(ReadNumber(*t, "backoff_initial_ms", at, &d.backoff_initial_ms, 1));
      SHOAL_RETURN_IF_ERROR(ReadNumber(*t, "backoff_max_ms", at, &d.backoff_max_ms, 1));
      SHOAL_RETURN_IF_ERROR(ReadNumber(*t, "timeout_ms", at, &d.timeout_ms, 1));
      for (const auto& other : config.destinations) {
        if (other.name == d.name) return Status::ParseError(at + " is defined twice");
      }
      config.destinations.push_back(std::move(d));
    }
  }
  if (const toml::node* exports = root.get("exports")) {
    const toml::array* arr = exports->as_array();
    if (arr == nullptr) return Status::ParseError("[[exports]] must be an array of tables");
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::table* t = (*arr)[i].as_table();
      std::string at = "[[exports]] entry " + std::to_string(i);
      if (t == nullptr) return Status::ParseError(at + " is not a table");
      ScheduledExport e;
      e.audience = (*t)["audience"].value_or(std::string());
      e.path = (*t)["path"].value_or(std::string());
      if (e.audience.empty() || e.path.empty()) return Status::ParseError(at + ": needs audience and path");
      auto format = ParseExportFormat((*t)["format"].value_or(std::string("csv")));
      if (!format.ok()) return format.status().WithContext(at);
      e.format = *format;
      SHOAL_RETURN_IF_ERROR(ReadNumber(*t, "every_minutes", at, &e.every_minutes, 0));
      e.marketing = (*t)["marketing"].value_or(true);
      if (e.format == ExportFormat::kCustomerList) e.marketing = true;  // ads are marketing
      config.exports.push_back(std::move(e));
    }
  }
  return config;
}

}  // namespace shoal
