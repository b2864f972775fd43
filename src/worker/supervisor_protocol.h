#pragma once

// How WorkerProcess (worker_process.cpp) and the tau-worker-supervisor executable
// (supervisor_main.cpp) talk to each other.
//
// WorkerProcess starts the supervisor in place of the worker, in its own process group, with the
// worker's stdin, stdout, stderr, working directory and environment, and this command line:
//
//   tau-worker-supervisor [--parent=PID] [--status-fd=FD] [--rlimit-as=BYTES]
//                         [--rlimit-nofile=COUNT] [--rlimit-nproc=COUNT]
//                         -- EXECUTABLE ARGV0 [ARGS...]
//
// The supervisor runs EXECUTABLE with ARGV0 ARGS... as its child, in a process group of its own.
// It is a child subreaper, so whatever the worker leaves behind (a double-forked daemon in a
// session of its own included) becomes its child. It stops all of that, with SIGKILL, when the
// worker exits, when it gets kKillSignal, and when the process PID exits (the gateway, watched
// through a pidfd, so a SIGKILL of the gateway is noticed too). Only then does it exit itself, the
// way the worker did: the same exit code, or killed by the same signal.
//
// SIGTERM, SIGINT, SIGHUP and SIGQUIT sent to the supervisor are passed on to the worker's
// process group: the gateway's polite stop. The status pipe FD carries an errno (one int) when the
// worker cannot be started, and closes without one once the worker has been exec'd.

#include <signal.h>  // NOLINT(modernize-deprecated-headers): POSIX names (SIGUSR1)

#include <string_view>

namespace tau::worker::supervisor {

inline constexpr std::string_view kExecutableName = "tau-worker-supervisor";

inline constexpr std::string_view kParentOption = "--parent=";
inline constexpr std::string_view kStatusFdOption = "--status-fd=";
inline constexpr std::string_view kAddressSpaceOption = "--rlimit-as=";
inline constexpr std::string_view kOpenFilesOption = "--rlimit-nofile=";
inline constexpr std::string_view kProcessesOption = "--rlimit-nproc=";
inline constexpr std::string_view kEndOfOptions = "--";

// Where WorkerProcess puts the status pipe for the supervisor (after stdin, stdout and stderr).
inline constexpr int kStatusFd = 3;

// "Stop everything now": the worker's whole tree is killed at once.
inline constexpr int kKillSignal = SIGUSR1;

}  // namespace tau::worker::supervisor
