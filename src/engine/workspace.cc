#include "engine/workspace.h"

#include <xxhash.h>

#include <fstream>
#include <sstream>
#include <toml++/toml.h>

namespace shoal {

namespace {

Status ParseEventTypes(const toml::table& root, const std::string& path, EventTypeRegistry* registry) {
  const toml::node* node = root.get("event_types");
  if (!node) return Status::OK();
  const toml::array* types = node->as_array();
  if (!types) return Status::InvalidArgument(path + ": event_types must be an array of tables ([[event_types]])");
  for (size_t i = 0; i < types->size(); ++i) {
    std::string where = path + ": event_types[" + std::to_string(i) + "]";
    const toml::table* t = (*types)[i].as_table();
    if (!t) return Status::InvalidArgument(where + " must be a table");
    EventTypeRegistry::CustomType custom;
    auto name = (*t)["name"].value<std::string>();
    if (!name) return Status::InvalidArgument(where + ".name is required (a string)");
    custom.name = *name;
    for (const char* key : {"numeric", "text"}) {
      const toml::node* list = t->get(key);
      if (!list) continue;
      const toml::array* arr = list->as_array();
      if (!arr) return Status::InvalidArgument(where + "." + key + " must be an array of strings");
      for (const auto& item : *arr) {
        auto v = item.value<std::string>();
        if (!v) return Status::InvalidArgument(where + "." + key + " must hold strings");
        (std::string(key) == "numeric" ? custom.numeric_properties : custom.text_properties).push_back(*v);
      }
    }
    for (const auto& [key, _] : *t) {
      std::string k(key.str());
      if (k != "name" && k != "numeric" && k != "text") {
        return Status::InvalidArgument(where + ": unknown key '" + k + "' (use name, numeric, text)");
      }
    }
    auto declared = registry->Declare(std::move(custom));
    if (!declared.ok()) return declared.status().WithContext(where);
  }
  return Status::OK();
}

Status ParseIdentity(const toml::table& root, const std::string& path, IdentityOptions* options) {
  const toml::node* node = root.get("identity");
  if (!node) return Status::OK();
  const toml::table* t = node->as_table();
  if (!t) return Status::InvalidArgument(path + ": [identity] must be a table");
  for (const auto& [key, value] : *t) {
    std::string k(key.str());
    auto v = value.value<int64_t>();
    if (!v || *v < 1) {
      return Status::InvalidArgument(path + ": identity." + k + " must be a positive integer");
    }
    if (k == "max_identifiers_per_profile") options->max_identifiers_per_profile = static_cast<uint32_t>(*v);
    else if (k == "max_customer_ids_per_profile") options->max_customer_ids_per_profile = static_cast<uint32_t>(*v);
    else if (k == "shared_identifier_threshold") options->shared_identifier_threshold = static_cast<uint32_t>(*v);
    else {
      return Status::InvalidArgument(path + ": unknown key identity." + k +
                                     " (use max_identifiers_per_profile, max_customer_ids_per_profile, shared_identifier_threshold)");
    }
  }
  return Status::OK();
}

}  // namespace

WorkspaceConfig WorkspaceConfig::Defaults() {
  auto c = Parse("", "");
  return std::move(c).value();  // the empty file is always valid
}

Result<WorkspaceConfig> WorkspaceConfig::Parse(const std::string& text, const std::string& path) {
  WorkspaceConfig c;
  c.path = path;
  c.text = text;
  try {
    c.table = std::make_shared<toml::table>(toml::parse(text, path));
  } catch (const toml::parse_error& err) {
    return Status::InvalidArgument(path + ":" + std::to_string(err.source().begin.line) + ":" +
                                   std::to_string(err.source().begin.column) + ": " +
                                   std::string(err.description()));
  }
  SHOAL_RETURN_IF_ERROR(ParseEventTypes(*c.table, path, &c.registry));
  SHOAL_RETURN_IF_ERROR(ParseIdentity(*c.table, path, &c.identity));
  auto traits = ParseTraitConfig(*c.table, c.registry);
  if (!traits.ok()) return traits.status().WithContext(path);
  c.traits = std::move(traits).value();
  // State depends on the declared types, identity guards and traits: fingerprint those sections.
  std::ostringstream shape;
  for (const char* key : {"event_types", "identity", "traits"}) {
    if (const toml::node* n = c.table->get(key)) {
      shape << key << "=";
      if (n->is_table()) shape << *n->as_table();
      else if (n->is_array()) shape << *n->as_array();
      shape << "\n";
    }
  }
  std::string s = shape.str();
  c.fingerprint = XXH3_64bits(s.data(), s.size());
  return c;
}

Result<WorkspaceConfig> LoadWorkspaceConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("cannot read workspace config " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return WorkspaceConfig::Parse(ss.str(), path);
}

}  // namespace shoal
