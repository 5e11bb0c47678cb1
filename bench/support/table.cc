#include "support/table.h"

#include <algorithm>
#include <cstdio>

namespace ferry::bench {

namespace {
const char* const kColumns[] = {"min", "median", "p99", "max"};

std::string plain(std::string s) {
  for (size_t at; (at = s.find("**")) != std::string::npos;) s.erase(at, 2);
  return s;
}
}  // namespace

StatsTable StatsTable::of(const nlohmann::json& report, std::initializer_list<RowSpec> rows) {
  StatsTable t;
  for (const auto& r : rows) {
    if (report.contains(r.section) && report[r.section].contains(r.key))
      t.row(r.label, report[r.section][r.key]);
  }
  return t;
}

void StatsTable::row(std::string label, const nlohmann::json& summary) {
  Row r{std::move(label), {}};
  if (summary.is_object() && summary.value("n", 0) > 0) {
    for (const char* c : kColumns) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.3f", summary[c].get<double>());
      r.cells.emplace_back(buf);
    }
  }
  rows_.push_back(std::move(r));
}

std::string StatsTable::text() const {
  size_t width = unit_.size() + 2;
  for (const auto& r : rows_) width = std::max(width, plain(r.label).size());
  auto line = [&](const std::string& label, const std::vector<std::string>& cells) {
    std::string out = label + std::string(width - label.size(), ' ');
    for (size_t i = 0; i < 4; ++i) {
      const std::string& c = i < cells.size() ? cells[i] : std::string("-");
      out += std::string(c.size() < 10 ? 10 - c.size() : 1, ' ') + c;
    }
    return out + "\n";
  };
  std::string out = line("(" + unit_ + ")", {kColumns, kColumns + 4});
  for (const auto& r : rows_) out += line(plain(r.label), r.cells);
  return out;
}

std::string StatsTable::markdown() const {
  std::string out = "| " + unit_ + " | min | median | p99 | max |\n|---|---:|---:|---:|---:|\n";
  for (const auto& r : rows_) {
    out += "| " + r.label;
    for (size_t i = 0; i < 4; ++i) out += " | " + (i < r.cells.size() ? r.cells[i] : std::string("—"));
    out += " |\n";
  }
  return out;
}

}  // namespace ferry::bench
