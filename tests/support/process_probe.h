#pragma once

#include <sys/types.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>

namespace tau::test {

// What process `pid` runs (its command line, arguments separated by spaces), or "" when there is
// no such process or it is a zombie (it has ended; only its parent has yet to reap it).
inline std::string running_command(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid);
  std::ifstream stat(dir + "/stat");
  std::string line;
  if (!std::getline(stat, line))
    return "";
  const auto close_paren = line.rfind(')');
  if (close_paren == std::string::npos || line.substr(close_paren + 2, 1) == "Z")
    return "";
  std::ifstream cmdline(dir + "/cmdline", std::ios::binary);
  std::string command((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
  std::replace(command.begin(), command.end(), '\0', ' ');
  while (!command.empty() && command.back() == ' ')
    command.pop_back();
  return command;
}

}  // namespace tau::test
