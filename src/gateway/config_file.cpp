#include "gateway/config_file.h"

#include <toml++/toml.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

namespace tau::gateway {

namespace {

using Problem = std::optional<std::string>;

// Flags that make no sense in the file itself.
bool settable_in_file(std::string_view flag) {
  return flag != "--config" && flag != "--help";
}

std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

// A TOML value as the text a flag would be given.
std::optional<std::string> flag_text(const toml::node& node) {
  if (const auto* text = node.as_string())
    return text->get();
  if (const auto* number = node.as_integer())
    return std::to_string(number->get());
  if (const auto* flag = node.as_boolean())
    return flag->get() ? "true" : "false";
  return std::nullopt;
}

bool valid_agent_name(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.';
  });
}

// Reads one file; every problem names it, the line and the key.
class FileReader {
 public:
  FileReader(const std::string& path, CLI::App& app) : app_(app) { file_.path = path; }

  Problem read(const toml::table& root);
  ConfigFile take() { return std::move(file_); }

  std::string where(const toml::source_region& source) const {
    return file_.path + ":" + std::to_string(source.begin.line);
  }
  std::string problem(const toml::source_region& source, std::string_view key,
                      std::string_view why) const {
    return where(source) + ": " + std::string(key) + ": " + std::string(why);
  }

 private:
  Problem apply_flag(const toml::key& key, const toml::node& value);
  Problem flag_values(const toml::node& value, const std::string& key, const CLI::Option& option,
                      std::vector<std::string>& values) const;
  Problem read_agents(const toml::node& value);
  Problem read_profile(std::string_view name, const toml::node& value);
  Problem read_profile_key(std::string_view name, const toml::node& value, const std::string& key,
                           AgentProfile& profile) const;
  Problem read_string(const toml::node& value, const std::string& key, std::string& out) const;
  Problem read_integer(const toml::node& value, const std::string& key, std::int64_t low,
                       std::int64_t high, std::int64_t& out) const;
  Problem read_strings(const toml::node& value, const std::string& key,
                       std::vector<std::string>& out) const;
  Problem read_env(const toml::node& value, const std::string& key,
                   std::vector<std::pair<std::string, std::string>>& out) const;

  CLI::App& app_;
  ConfigFile file_;
  std::set<std::string> flags_seen_;
};

Problem FileReader::read(const toml::table& root) {
  for (const auto& [key, value] : root) {
    Problem refused;
    if (key.str() == "default_agent") {
      file_.default_agent.emplace();
      file_.default_agent_source = where(value.source());
      refused = read_string(value, "default_agent", *file_.default_agent);
    } else if (key.str() == "agents") {
      refused = read_agents(value);
    } else {
      refused = apply_flag(key, value);
    }
    if (refused)
      return refused;
  }
  return std::nullopt;
}

Problem FileReader::flag_values(const toml::node& value, const std::string& key,
                                const CLI::Option& option, std::vector<std::string>& values) const {
  const auto* array = value.as_array();
  if (!array) {
    auto text = flag_text(value);
    if (!text)
      return problem(value.source(), key, "must be a string, an integer or a boolean");
    values.push_back(std::move(*text));
    return std::nullopt;
  }
  if (option.get_items_expected_max() <= 1)
    return problem(value.source(), key, "takes one value, not an array");
  for (const auto& element : *array) {
    auto text = flag_text(element);
    if (!text)
      return problem(element.source(), key, "array elements must be strings or integers");
    values.push_back(std::move(*text));
  }
  return std::nullopt;
}

// `key` names a flag: its value is the flag's unless the command line or the environment set it.
Problem FileReader::apply_flag(const toml::key& key, const toml::node& value) {
  std::string flag = "--" + std::string(key.str());
  std::replace(flag.begin(), flag.end(), '_', '-');
  CLI::Option* option = settable_in_file(flag) ? app_.get_option_no_throw(flag) : nullptr;
  if (!option) {
    return problem(key.source(), key.str(),
                   "unknown key: not a flag's name, default_agent or [agents.NAME]");
  }
  if (!flags_seen_.insert(flag).second)
    return problem(key.source(), key.str(), "sets " + flag + " a second time");
  std::vector<std::string> values;
  if (auto refused = flag_values(value, std::string(key.str()), *option, values))
    return refused;
  if (option->count() > 0)
    return std::nullopt;  // the command line or the environment wins
  try {
    option->add_result(values);
    option->run_callback();
  } catch (const CLI::ParseError& error) {
    return problem(value.source(), key.str(), one_line(error.what()));
  }
  file_.flag_sources.emplace_back(flag, where(value.source()));
  return std::nullopt;
}

Problem FileReader::read_agents(const toml::node& value) {
  const auto* table = value.as_table();
  if (!table)
    return problem(value.source(), "agents", "must be a table of [agents.NAME] tables");
  for (const auto& [name, profile] : *table) {
    if (auto refused = read_profile(name.str(), profile))
      return refused;
  }
  return std::nullopt;
}

Problem FileReader::read_profile(std::string_view name, const toml::node& value) {
  const std::string prefix = "agents." + std::string(name);
  if (!valid_agent_name(name)) {
    return problem(value.source(), prefix,
                   "an agent's name is 1 to 64 letters, digits, '-', '_' or '.'");
  }
  const auto* table = value.as_table();
  if (!table)
    return problem(value.source(), prefix, "must be a table");
  AgentProfile profile;
  profile.name = std::string(name);
  for (const auto& [key, field] : *table) {
    if (auto refused =
            read_profile_key(key.str(), field, prefix + "." + std::string(key.str()), profile)) {
      return refused;
    }
  }
  for (const char* required : {"protocol", "command"}) {
    if (!table->contains(required))
      return problem(value.source(), prefix + "." + required, "is required");
  }
  file_.profiles.emplace_back(std::move(profile), where(value.source()));
  return std::nullopt;
}

Problem FileReader::read_profile_key(std::string_view name, const toml::node& value,
                                     const std::string& key, AgentProfile& profile) const {
  std::string text;
  std::int64_t number = 0;
  if (name == "protocol" || name == "permission") {
    if (auto refused = read_string(value, key, text))
      return refused;
    if (name == "protocol") {
      const auto protocol = agent_protocol_from_string(text);
      if (!protocol)
        return problem(value.source(), key,
                       "'" + text + "' is not acp, claude-stream-json or lines");
      profile.protocol = *protocol;
    } else {
      const auto policy = permission_policy_from_string(text);
      if (!policy)
        return problem(value.source(), key, "'" + text + "' is not ask, allow or deny");
      profile.permission = *policy;
    }
  } else if (name == "command") {
    if (auto refused = read_string(value, key, profile.command))
      return refused;
    if (profile.command.empty())
      return problem(value.source(), key, "must not be empty");
  } else if (name == "args") {
    return read_strings(value, key, profile.args);
  } else if (name == "env") {
    return read_env(value, key, profile.env);
  } else if (name == "permission_timeout_ms") {
    if (auto refused = read_integer(value, key, 1, kMaxPermissionTimeoutMs, number))
      return refused;
    profile.permission_timeout_ms = number;
  } else if (name == "startup_timeout_ms") {
    if (auto refused = read_integer(value, key, 1, kMaxPermissionTimeoutMs, number))
      return refused;
    profile.startup_timeout_ms = number;
  } else if (name == "max_events") {
    if (auto refused = read_integer(value, key, 1, std::int64_t{1} << 32, number))
      return refused;
    profile.max_events = static_cast<std::uint64_t>(number);
  } else {
    return problem(value.source(), key,
                   "unknown key: a profile has protocol, command, args, env, permission, "
                   "permission_timeout_ms, startup_timeout_ms and max_events");
  }
  return std::nullopt;
}

Problem FileReader::read_string(const toml::node& value, const std::string& key,
                                std::string& out) const {
  const auto* text = value.as_string();
  if (!text)
    return problem(value.source(), key, "must be a string");
  out = text->get();
  return std::nullopt;
}

Problem FileReader::read_integer(const toml::node& value, const std::string& key, std::int64_t low,
                                 std::int64_t high, std::int64_t& out) const {
  const auto* number = value.as_integer();
  if (!number || number->get() < low || number->get() > high) {
    return problem(
        value.source(), key,
        "must be an integer from " + std::to_string(low) + " to " + std::to_string(high));
  }
  out = number->get();
  return std::nullopt;
}

Problem FileReader::read_strings(const toml::node& value, const std::string& key,
                                 std::vector<std::string>& out) const {
  const auto* array = value.as_array();
  if (!array)
    return problem(value.source(), key, "must be an array of strings");
  for (const auto& element : *array) {
    const auto* text = element.as_string();
    if (!text)
      return problem(element.source(), key, "must be an array of strings");
    out.push_back(text->get());
  }
  return std::nullopt;
}

// Values are never echoed: they may be secrets.
Problem FileReader::read_env(const toml::node& value, const std::string& key,
                             std::vector<std::pair<std::string, std::string>>& out) const {
  const auto* table = value.as_table();
  if (!table)
    return problem(value.source(), key, "must be a table of NAME = \"value\"");
  for (const auto& [name, variable] : *table) {
    const std::string variable_key = key + "." + std::string(name.str());
    if (name.str().empty() || name.str().find('=') != std::string_view::npos)
      return problem(name.source(), variable_key, "is not a variable name");
    const auto* text = variable.as_string();
    if (!text)
      return problem(variable.source(), variable_key, "must be a string");
    out.emplace_back(std::string(name.str()), text->get());
  }
  return std::nullopt;
}

}  // namespace

std::variant<ConfigFile, std::string> read_config_file(const std::string& path, CLI::App& app) {
  if (std::filesystem::is_directory(path))
    return "--config: " + path + ": is a directory";
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in)
    text << in.rdbuf();
  if (!in || in.bad())
    return "--config: " + path + ": cannot be read: " + std::generic_category().message(errno);
  toml::table root;
  try {
    root = toml::parse(text.str(), path);
  } catch (const toml::parse_error& error) {
    return path + ":" + std::to_string(error.source().begin.line) +
           ": syntax error: " + one_line(std::string(error.description()));
  }
  FileReader reader(path, app);
  if (auto refused = reader.read(root))
    return *refused;
  return reader.take();
}

}  // namespace tau::gateway
