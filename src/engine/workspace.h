// The workspace configuration: one TOML file (docs/config.md) that declares custom event types,
// identity guards, user-defined traits and, for later stages, segments, audiences and models.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "identity/identity_graph.h"
#include "ingest/event.h"
#include "traits/trait_config.h"

namespace toml { inline namespace v3 { class table; } }

namespace shoal {

struct WorkspaceConfig {
  std::string path;                 // the file it came from ("" = defaults)
  std::string text;                 // its text (stored in the workspace; fingerprinted)
  uint64_t fingerprint = 0;         // of the parts that shape stored state (types, traits)
  EventTypeRegistry registry;
  IdentityOptions identity;
  TraitConfig traits;
  std::shared_ptr<toml::table> table;  // the parsed file, for later stages' sections

  // Parses `text` (from `path`, used in messages). Errors name the file, the key and the problem.
  static Result<WorkspaceConfig> Parse(const std::string& text, const std::string& path);
  // Defaults: no custom types, no user traits.
  static WorkspaceConfig Defaults();
};

// Reads and parses a TOML file.
Result<WorkspaceConfig> LoadWorkspaceConfig(const std::string& path);

}  // namespace shoal
