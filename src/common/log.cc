#include "common/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include "common/unique_fd.h"

namespace ferry::log {

Status make_private_file(const std::string& path) {
  // spdlog opens with fopen(), so with mode 0666 & ~umask; logs name images and registries.
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!fd) return errno_error("cannot open log file '" + path + "'");
  if (::fchmod(fd.get(), 0600) != 0) return errno_error("cannot make log file '" + path + "' private (chmod 0600)");
  return ok_status();
}

Status init(const std::string& level, const std::string& file, const std::string& name) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    return Error{EINVAL, "unknown log level '" + level + "' (use trace, debug, info, warn, error or off)"};
  }
  if (!file.empty()) FERRY_TRY(make_private_file(file));
  std::shared_ptr<spdlog::logger> logger;
  try {
    if (file.empty()) {
      logger = std::make_shared<spdlog::logger>(name, std::make_shared<spdlog::sinks::stderr_sink_mt>());
    } else {
      logger = std::make_shared<spdlog::logger>(
          name, std::make_shared<spdlog::sinks::basic_file_sink_mt>(file, false));
    }
  } catch (const spdlog::spdlog_ex& e) {
    return Error{EIO, "cannot open log file '" + file + "': " + e.what()};
  }
  logger->set_level(lvl);
  // Microseconds: a failover or a hand-over lasts about a millisecond, and its steps are read
  // from these times.
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%f %^%l%$ %n[%P]: %v");
  // Daemons die by SIGKILL in production and in tests: a line still in the buffer then is lost
  // exactly when it is needed. Info lines come from control events only (never per request).
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
  return {};
}

}  // namespace ferry::log
