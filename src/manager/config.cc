#include "manager/config.h"

#include <fcntl.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <optional>

#include "common/unique_fd.h"

namespace ferry::manager {
namespace {

// A config larger than this is not a config: refusing it keeps a mistaken path (a log, an
// image) from being slurped into memory and parsed.
constexpr size_t kMaxConfigBytes = 1 << 20;

// sockaddr_un::sun_path holds 108 bytes including the terminating NUL.
constexpr size_t kMaxUnixSocketPath = 107;

Error invalid(std::string message) {
  return Error{EINVAL, std::move(message)};
}

std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += "\\x";
      constexpr char kHex[] = "0123456789abcdef";
      out += kHex[(c >> 4) & 0xf];
      out += kHex[c & 0xf];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// "[daemon] threads_number", or "version" for a top-level key.
std::string key_name(std::string_view section, std::string_view key) {
  if (section.empty()) return std::string(key);
  // Appended, not concatenated with operator+: g++ 12 at -O3 reports a false -Wrestrict in
  // the inlined operator+ chain (GCC bug 105329).
  std::string name;
  name.reserve(section.size() + key.size() + 3);
  name.append("[").append(section).append("] ").append(key);
  return name;
}

Status check_absolute(std::string_view name, const std::string& path, bool empty_ok) {
  if (path.empty()) {
    if (empty_ok) return ok_status();
    return invalid(std::string(name) + ": must be an absolute path, got an empty string");
  }
  if (path.find('\0') != std::string::npos) return invalid(std::string(name) + ": path contains a NUL byte");
  if (path.front() != '/') {
    return invalid(std::string(name) + ": must be an absolute path, got " + quoted(path));
  }
  return ok_status();
}

Status check_one_of(std::string_view name, const std::string& value,
                    std::initializer_list<std::string_view> allowed) {
  std::string list;
  for (std::string_view a : allowed) {
    if (value == a) return ok_status();
    if (!list.empty()) list += ", ";
    list += a;
  }
  return invalid(std::string(name) + ": expected one of " + list + ", got " + quoted(value));
}

// "127.0.0.1:PORT", "[::1]:PORT" or "localhost:PORT". The metrics endpoint has no
// authentication, so it must not be reachable from other hosts. Port 0 (an ephemeral port)
// is allowed for tests.
Status check_metrics_address(const std::string& address) {
  if (address.empty()) return ok_status();
  const std::string name = "[metrics] address";
  auto colon = address.rfind(':');
  std::string host = colon == std::string::npos ? address : address.substr(0, colon);
  if (colon == std::string::npos || (host != "127.0.0.1" && host != "[::1]" && host != "localhost")) {
    return invalid(name + ": expected a loopback address 127.0.0.1:PORT, [::1]:PORT or localhost:PORT, got " +
                   quoted(address));
  }
  std::string_view port = std::string_view(address).substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    return invalid(name + ": port must be a number 0..65535, got " + quoted(address));
  }
  return ok_status();
}

std::optional<DaemonMode> parse_daemon_mode(std::string_view text) {
  if (text == "dedicated") return DaemonMode::kDedicated;
  if (text == "shared") return DaemonMode::kShared;
  return std::nullopt;
}

// Walks one table, refusing keys it does not know and values of the wrong type. Each
// handler receives the node of its key; an absent key keeps the default.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string section) : table_(table), section_(std::move(section)) {}

  using Handler = std::function<Status(const toml::node&, const std::string& name)>;
  TableReader& on(std::string_view key, Handler handler) {
    handlers_.emplace_back(std::string(key), std::move(handler));
    return *this;
  }

  Status run() const {
    for (auto&& [key, node] : table_) {
      const Handler* handler = nullptr;
      for (const auto& [k, h] : handlers_) {
        if (k == key.str()) handler = &h;
      }
      if (handler == nullptr) {
        return invalid("unknown key '" + key_name(section_, key.str()) + "'" + known_keys());
      }
      FERRY_TRY((*handler)(node, key_name(section_, key.str())));
    }
    return ok_status();
  }

 private:
  std::string known_keys() const {
    std::string out = " (known keys:";
    for (const auto& [k, h] : handlers_) out += " " + k;
    return out + ")";
  }

  const toml::table& table_;
  std::string section_;
  std::vector<std::pair<std::string, Handler>> handlers_;
};

std::string_view type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      return "a date/time";
    default:
      return "something else";
  }
}

Error wrong_type(const std::string& name, std::string_view expected, const toml::node& node) {
  return invalid(name + ": expected " + std::string(expected) + ", got " + std::string(type_name(node)));
}

TableReader::Handler string_into(std::string& out) {
  return [&out](const toml::node& node, const std::string& name) -> Status {
    const auto* s = node.as_string();
    if (s == nullptr) return wrong_type(name, "a string", node);
    out = s->get();
    return ok_status();
  };
}

TableReader::Handler bool_into(bool& out) {
  return [&out](const toml::node& node, const std::string& name) -> Status {
    const auto* b = node.as_boolean();
    if (b == nullptr) return wrong_type(name, "a boolean", node);
    out = b->get();
    return ok_status();
  };
}

// Range checks happen here too: a negative or huge value must not wrap into `unsigned`.
TableReader::Handler unsigned_into(unsigned& out, int64_t min, int64_t max) {
  return [&out, min, max](const toml::node& node, const std::string& name) -> Status {
    const auto* i = node.as_integer();
    if (i == nullptr) return wrong_type(name, "an integer", node);
    int64_t v = i->get();
    if (v < min || v > max) {
      return invalid(name + ": must be between " + std::to_string(min) + " and " + std::to_string(max) +
                     ", got " + std::to_string(v));
    }
    out = static_cast<unsigned>(v);
    return ok_status();
  };
}

// An array of "HOST[:PORT]" strings (a registry host as image references name it).
TableReader::Handler hosts_into(std::vector<std::string>& out) {
  return [&out](const toml::node& node, const std::string& name) -> Status {
    const auto* a = node.as_array();
    if (a == nullptr) return wrong_type(name, "an array of strings", node);
    std::vector<std::string> hosts;
    for (const toml::node& item : *a) {
      const auto* s = item.as_string();
      if (s == nullptr) return wrong_type(name + " item", "a string", item);
      const std::string& h = s->get();
      if (h.empty() || h.find_first_of("/ \t\n@") != std::string::npos) {
        return invalid(name + ": expected registry hosts \"HOST[:PORT]\" (no scheme, no path), got " + quoted(h));
      }
      hosts.push_back(h);
    }
    out = std::move(hosts);
    return ok_status();
  };
}

TableReader::Handler section(const std::function<Status(const toml::table&)>& read) {
  return [read](const toml::node& node, const std::string& name) -> Status {
    const auto* t = node.as_table();
    if (t == nullptr) return wrong_type("[" + name + "]", "a table", node);
    return read(*t);
  };
}

Status read_config(const toml::table& root, ManagerConfig& config) {
  bool have_version = false;
  TableReader top(root, "");
  top.on("version",
         [&](const toml::node& node, const std::string& name) -> Status {
           const auto* i = node.as_integer();
           if (i == nullptr) return wrong_type(name, "an integer", node);
           if (i->get() != 1) {
             return invalid("version: only version 1 is understood, got " + std::to_string(i->get()));
           }
           have_version = true;
           config.version = 1;
           return ok_status();
         })
      .on("root", string_into(config.root))
      .on("address", string_into(config.address))
      .on("daemon_mode",
          [&](const toml::node& node, const std::string& name) -> Status {
            const auto* s = node.as_string();
            if (s == nullptr) return wrong_type(name, "a string", node);
            auto mode = parse_daemon_mode(s->get());
            if (!mode) return check_one_of(name, s->get(), {"dedicated", "shared"});
            config.daemon_mode = *mode;
            return ok_status();
          })
      .on("daemon", section([&](const toml::table& t) {
            auto& d = config.daemon;
            return TableReader(t, "daemon")
                .on("nydusd_path", string_into(d.nydusd_path))
                .on("recover_policy",
                    [&](const toml::node& node, const std::string& name) -> Status {
                      const auto* s = node.as_string();
                      if (s == nullptr) return wrong_type(name, "a string", node);
                      auto policy = parse_recover_policy(s->get());
                      if (!policy.ok()) return std::move(policy).error().context(name);
                      d.recover_policy = *policy;
                      return ok_status();
                    })
                .on("failover_policy", string_into(d.failover_policy))
                .on("threads_number", unsigned_into(d.threads_number, 1, 256))
                .on("fs_driver", string_into(d.fs_driver))
                .on("recover_attempts", unsigned_into(d.recover_attempts, 1, 100))
                .on("hot_standby", bool_into(d.hot_standby))
                .run();
          }))
      .on("system", section([&](const toml::table& t) {
            return TableReader(t, "system")
                .on("enable", bool_into(config.system.enable))
                .on("address", string_into(config.system.address))
                .run();
          }))
      .on("log", section([&](const toml::table& t) {
            return TableReader(t, "log")
                .on("level", string_into(config.log.level))
                .on("dir", string_into(config.log.dir))
                .run();
          }))
      .on("metrics", section([&](const toml::table& t) {
            return TableReader(t, "metrics").on("address", string_into(config.metrics.address)).run();
          }))
      .on("remote", section([&](const toml::table& t) {
            return TableReader(t, "remote")
                .on("auth_file", string_into(config.remote.auth_file))
                .on("insecure_registries", hosts_into(config.remote.insecure_registries))
                .run();
          }));
  FERRY_TRY(top.run());
  if (!have_version) return invalid("version = 1 is required (add it at the top of the file)");
  return validate(config);
}

// "<origin>:<line>:<column>: <what>", the form editors and compilers use.
Error syntax_error(std::string_view origin, const toml::source_region& where, std::string_view what) {
  std::string pos = std::to_string(where.begin.line) + ":" + std::to_string(where.begin.column);
  return invalid((origin.empty() ? pos : std::string(origin) + ":" + pos) + ": " + std::string(what));
}

std::string with_origin(std::string_view origin, const std::string& message) {
  if (origin.empty()) return message;
  return std::string(origin) + ": " + message;
}

}  // namespace

std::string_view to_string(DaemonMode mode) {
  switch (mode) {
    case DaemonMode::kDedicated:
      return "dedicated";
    case DaemonMode::kShared:
      return "shared";
  }
  return "unknown";
}

std::string_view to_string(RecoverPolicy policy) {
  switch (policy) {
    case RecoverPolicy::kNone:
      return "none";
    case RecoverPolicy::kRestart:
      return "restart";
    case RecoverPolicy::kFailover:
      return "failover";
  }
  return "unknown";
}

Result<RecoverPolicy> parse_recover_policy(std::string_view text) {
  if (text == "none") return RecoverPolicy::kNone;
  if (text == "restart") return RecoverPolicy::kRestart;
  if (text == "failover") return RecoverPolicy::kFailover;
  return invalid("expected one of none, restart, failover, got " + quoted(text));
}

Status validate(const ManagerConfig& config) {
  if (config.version != 1) {
    return invalid("version: only version 1 is understood, got " + std::to_string(config.version));
  }
  FERRY_TRY(check_absolute("root", config.root, false));
  if (to_string(config.daemon_mode) == "unknown")
    return invalid("daemon_mode: expected one of dedicated, shared");

  const auto& d = config.daemon;
  FERRY_TRY(check_absolute("[daemon] nydusd_path", d.nydusd_path, true));
  if (to_string(d.recover_policy) == "unknown") {
    return invalid("[daemon] recover_policy: expected one of none, restart, failover");
  }
  FERRY_TRY(check_one_of("[daemon] failover_policy", d.failover_policy, {"none", "resend"}));
  if (d.threads_number < 1 || d.threads_number > 256) {
    return invalid("[daemon] threads_number: must be between 1 and 256, got " +
                   std::to_string(d.threads_number));
  }
  if (d.fs_driver == "fscache") {
    return invalid(
        "[daemon] fs_driver: fscache is not supported (ferryd serves images over FUSE only); use "
        "\"fusedev\"");
  }
  FERRY_TRY(check_one_of("[daemon] fs_driver", d.fs_driver, {"fusedev"}));
  if (d.recover_attempts < 1 || d.recover_attempts > 100) {
    return invalid("[daemon] recover_attempts: must be between 1 and 100, got " +
                   std::to_string(d.recover_attempts));
  }

  FERRY_TRY(check_absolute("address", config.address, false));
  if (config.address.size() > kMaxUnixSocketPath) {
    return invalid("address: " + quoted(config.address) + " is " + std::to_string(config.address.size()) +
                   " bytes, a unix socket path holds at most " + std::to_string(kMaxUnixSocketPath));
  }
  // A disabled system API may leave the address empty; one that is given must still be sane.
  FERRY_TRY(check_absolute("[system] address", config.system.address, !config.system.enable));
  if (config.system.address.size() > kMaxUnixSocketPath) {
    return invalid("[system] address: " + quoted(config.system.address) + " is " +
                   std::to_string(config.system.address.size()) +
                   " bytes, a unix socket path holds at most " + std::to_string(kMaxUnixSocketPath));
  }

  FERRY_TRY(
      check_one_of("[log] level", config.log.level, {"trace", "debug", "info", "warn", "error", "off"}));
  FERRY_TRY(check_absolute("[log] dir", config.log.dir, true));
  FERRY_TRY(check_metrics_address(config.metrics.address));
  FERRY_TRY(check_absolute("[remote] auth_file", config.remote.auth_file, true));
  return ok_status();
}

Result<ManagerConfig> parse_config(std::string_view toml_text, std::string_view origin) {
  // The Debian libtomlplusplus is built with exceptions (ABI namespace toml::v3::ex), so
  // parse() throws toml::parse_error; the other branch keeps this right if that ever changes.
  // Nothing may escape: a config is user input and the caller expects a Result.
  ManagerConfig config;
  try {
#if TOML_EXCEPTIONS
    toml::table root = toml::parse(toml_text, origin);
#else
    toml::parse_result parsed = toml::parse(toml_text, origin);
    if (!parsed) {
      const auto& err = parsed.error();
      return syntax_error(origin, err.source(), err.description());
    }
    toml::table root = std::move(parsed).table();
#endif
    Status st = read_config(root, config);
    if (!st.ok()) return Error{st.error().code, with_origin(origin, st.error().message)};
#if TOML_EXCEPTIONS
  } catch (const toml::parse_error& err) {
    return syntax_error(origin, err.source(), err.description());
#endif
  } catch (const std::exception& err) {
    return invalid(with_origin(origin, std::string("cannot parse configuration: ") + err.what()));
  }
  return config;
}

Result<ManagerConfig> load_config(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("cannot open config '" + path + "'");
  std::string text;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("cannot read config '" + path + "'");
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxConfigBytes) {
      return Error{EFBIG, "config '" + path + "' is larger than " + std::to_string(kMaxConfigBytes) +
                              " bytes: is this the right file?"};
    }
  }
  return parse_config(text, path);
}

std::string default_config_toml() {
  return R"(# ferry-snapshotter configuration. Every key is shown with its default value.
# Unknown keys are refused, so a typo is an error rather than a silently ignored setting.

# Configuration format version; required, only 1 is understood.
version = 1
# Where the manager keeps its records (ferry.db), supervisor and API sockets and logs.
root = "/var/lib/ferry"
# "dedicated": one ferryd per mount; "shared": one ferryd serves every mount.
daemon_mode = "dedicated"
# containerd's snapshots API (gRPC) on this unix socket (absolute path, created 0600); name it in
# containerd's [proxy_plugins.ferry] address (docs/containerd.md).
address = "/run/ferry/ferry-grpc.sock"

[daemon]
# The ferryd binary (absolute path); empty: the ferryd next to ferry-snapshotter.
nydusd_path = ""
# What to do when a daemon dies: "none" (leave it dead), "restart" (start a fresh daemon and
# attach its images again) or "failover" (a successor takes over the saved state and /dev/fuse).
recover_policy = "failover"
# How a successor treats requests that were in flight at the crash: "none" | "resend".
failover_policy = "resend"
# FUSE worker threads per daemon (ferryd --thread-num), 1..256.
threads_number = 4
# The kernel interface; only "fusedev" is supported.
fs_driver = "fusedev"
# Recovery attempts per death before the daemon is given up as DEAD, 1..100.
recover_attempts = 3
# Failover only: one standby per daemon holds its state and serves the moment it exits.
hot_standby = true

[system]
# Serve the system API (mounts, daemons, records, upgrade).
enable = true
# The system API's unix socket (absolute path).
address = "/run/ferry/system.sock"

[log]
# One of trace, debug, info, warn, error, off.
level = "info"
# Directory of the manager's and daemons' logs (absolute path); empty: <root>/logs.
dir = ""

[metrics]
# GET /metrics over TCP on a loopback address, "127.0.0.1:PORT", "[::1]:PORT" or
# "localhost:PORT"; empty: no TCP listener (metrics stay available on the system socket).
address = ""

[remote]
# Ferry images (pulled lazily by ferryd from their registry, docs/containerd.md).
# Registry credentials: a docker config.json whose "auths" {"HOST": {"auth": base64("user:pass")}}
# names the image's registry host (absolute path; a missing file or empty string: anonymous).
# They reach only each daemon's config file (mode 0600), never a log.
auth_file = "/root/.docker/config.json"
# Registry hosts ("HOST[:PORT]") spoken to over plain http instead of https.
insecure_registries = []
)";
}

}  // namespace ferry::manager
