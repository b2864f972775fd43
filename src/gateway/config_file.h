#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "gateway/agent_profiles.h"

namespace CLI {
class App;
}

namespace tau::gateway {

// What a config file (--config FILE, TOML) held besides the flags it set.
struct ConfigFile {
  std::string path;
  // Each flag the file set ("--bind") and where ("FILE:LINE"), so that a later check refusing
  // its value can name the file.
  std::vector<std::pair<std::string, std::string>> flag_sources;
  // [agents.NAME] tables, in name order, each with where it starts. A profile's max_events is 0
  // when the file leaves it to the default.
  std::vector<std::pair<AgentProfile, std::string>> profiles;
  std::optional<std::string> default_agent;
  std::string default_agent_source;
};

// Reads the TOML file at `path` into `app`, whose command line and environment are already
// parsed: each top-level key that names a flag (`max-active-sessions`, or with underscores)
// sets that flag unless the command line or the environment did, converted and checked as the
// flag would be. `default_agent` and the [agents.NAME] tables are read into the result. Anything
// else, or a value of the wrong kind, is refused with one line "FILE:LINE: KEY: why".
std::variant<ConfigFile, std::string> read_config_file(const std::string& path, CLI::App& app);

}  // namespace tau::gateway
