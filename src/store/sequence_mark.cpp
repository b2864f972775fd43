#include "store/sequence_mark.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "store/session_store.h"

namespace tau::store {

namespace {

constexpr std::string_view kMarkHeader = "tau-gateway sequence mark 1\n";

// FNV-1a, 64 bits: catches a garbled mark (the file is replaced by rename, never torn).
std::uint64_t fnv1a(std::string_view bytes) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (const char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

// The header, one "<sequence id> <session id>" line per session, then "end <lines> <checksum>".
std::string format_marks(const SequenceMarks& marks) {
  std::string text(kMarkHeader);
  std::size_t lines = 0;
  for (const auto& [session_id, sequence_id] : marks) {
    // Session ids are generated ("eca_" and hex); one with a line break cannot be written.
    if (session_id.empty() || session_id.find_first_of("\r\n") != std::string::npos)
      continue;
    text += std::to_string(sequence_id);
    text += ' ';
    text += session_id;
    text += '\n';
    ++lines;
  }
  char trailer[64];
  std::snprintf(trailer, sizeof trailer, "end %zu %016llx\n", lines,
                static_cast<unsigned long long>(fnv1a(text)));
  return text + trailer;
}

StoreError damaged_mark(const std::string& mark_path, const std::string& why) {
  return StoreError("sequence mark " + mark_path + " is damaged (" + why +
                    "): it keeps sequence ids from being handed out twice after a lost "
                    "write-ahead log tail; refusing to start without it (move it aside to start "
                    "anyway, accepting that ids lost with such a tail may be reused)");
}

}  // namespace

std::string mark_path_of(const std::string& database_path) {
  return database_path + ".seqmark";
}

std::optional<SequenceMarks> read_marks(const std::string& mark_path) {
  const int fd = ::open(mark_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      return std::nullopt;
    throw StoreError("cannot read sequence mark " + mark_path + ": " +
                     std::generic_category().message(errno));
  }
  std::string text;
  char buffer[65536];
  while (true) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      const int error = errno;
      ::close(fd);
      throw StoreError("cannot read sequence mark " + mark_path + ": " +
                       std::generic_category().message(error));
    }
    if (got == 0)
      break;
    text.append(buffer, static_cast<std::size_t>(got));
  }
  ::close(fd);

  if (!text.starts_with(kMarkHeader))
    throw damaged_mark(mark_path, "no header");
  if (text.empty() || text.back() != '\n')
    throw damaged_mark(mark_path, "no trailer");
  const std::size_t trailer_at = text.rfind('\n', text.size() - 2) + 1;
  if (trailer_at < kMarkHeader.size())
    throw damaged_mark(mark_path, "no trailer");
  const std::string body = text.substr(0, trailer_at);
  const std::string trailer = text.substr(trailer_at, text.size() - trailer_at - 1);
  std::size_t expected_lines = 0;
  unsigned long long checksum = 0;
  int consumed = 0;
  if (std::sscanf(trailer.c_str(), "end %zu %16llx%n", &expected_lines, &checksum, &consumed) !=
          2 ||
      static_cast<std::size_t>(consumed) != trailer.size()) {
    throw damaged_mark(mark_path, "no trailer");
  }
  if (checksum != fnv1a(body))
    throw damaged_mark(mark_path, "checksum mismatch");

  SequenceMarks marks;
  std::size_t at = kMarkHeader.size();
  while (at < body.size()) {
    const std::size_t end = body.find('\n', at);
    const std::string_view line(body.data() + at, end - at);
    at = end + 1;
    const std::size_t space = line.find(' ');
    std::uint64_t sequence_id = 0;
    const auto parsed =
        std::from_chars(line.data(), line.data() + std::min(space, line.size()), sequence_id);
    if (space == std::string_view::npos || space + 1 == line.size() || parsed.ec != std::errc() ||
        parsed.ptr != line.data() + space) {
      throw damaged_mark(mark_path, "malformed line");
    }
    marks[std::string(line.substr(space + 1))] = sequence_id;
  }
  if (marks.size() != expected_lines)
    throw damaged_mark(mark_path, "line count mismatch");
  return marks;
}

std::string write_marks(const std::string& mark_path, const SequenceMarks& marks) {
  const std::string text = format_marks(marks);
  const std::string temporary = mark_path + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return "cannot create " + temporary + ": " + std::generic_category().message(errno);
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t wrote = ::write(fd, text.data() + written, text.size() - written);
    if (wrote < 0 && errno == EINTR)
      continue;
    if (wrote < 0) {
      const int error = errno;
      ::close(fd);
      return "cannot write " + temporary + ": " + std::generic_category().message(error);
    }
    written += static_cast<std::size_t>(wrote);
  }
  if (::fsync(fd) != 0) {
    const int error = errno;
    ::close(fd);
    return "cannot fsync " + temporary + ": " + std::generic_category().message(error);
  }
  ::close(fd);
  if (::rename(temporary.c_str(), mark_path.c_str()) != 0)
    return "cannot rename " + temporary + ": " + std::generic_category().message(errno);
  std::string directory = std::filesystem::path(mark_path).parent_path().string();
  if (directory.empty())
    directory = ".";
  const int dir_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0)
    return "cannot open " + directory + ": " + std::generic_category().message(errno);
  const int rc = ::fsync(dir_fd);
  const int error = errno;
  ::close(dir_fd);
  if (rc != 0)
    return "cannot fsync " + directory + ": " + std::generic_category().message(error);
  return "";
}

}  // namespace tau::store
