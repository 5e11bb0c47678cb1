#include "common/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace ferry::log {

Status init(const std::string& level, const std::string& file, const std::string& name) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    return Error{EINVAL, "unknown log level '" + level + "' (use trace, debug, info, warn, error or off)"};
  }
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
