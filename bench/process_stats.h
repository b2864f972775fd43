#pragma once
// What the load generators measure of themselves and of the server under test, from getrusage
// and /proc. Shared by sse_load and append_load.

#include <sys/resource.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

namespace tau::bench {

// VmRSS of a process in KiB, or -1.
inline long read_rss_kib(long pid) {
  if (pid <= 0)
    return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmRSS:")) {
      std::istringstream fields(line.substr(6));
      long kib = -1;
      fields >> kib;
      return kib;
    }
  }
  return -1;
}

// CPU time (user + system, clock ticks) of a process, or -1.
inline long read_cpu_ticks(long pid) {
  if (pid <= 0)
    return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos)
    return -1;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  long utime = -1;
  long stime = -1;
  // After "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
  for (int index = 3; index <= 15 && fields >> field; ++index) {
    if (index == 14)
      utime = std::stol(field);
    if (index == 15)
      stime = std::stol(field);
  }
  return utime < 0 || stime < 0 ? -1 : utime + stime;
}

// CPU time (user + system) of this process in seconds.
inline double self_cpu_s() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Thousands of sockets need more descriptors than the default soft limit.
inline void raise_nofile_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
    return;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
    std::perror("setrlimit(RLIMIT_NOFILE)");
}

}  // namespace tau::bench
