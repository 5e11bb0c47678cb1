// StatsTable: the one renderer of the benchmarks' summary tables. A row is a label and a
// summary from summarize() (n/min/median/p99/max); the table renders as aligned text for the
// terminal and as markdown for docs/benchmarks.md, so a table is written once, by the driver that
// measured it, and the report scripts (bench/*_report.py) paste its markdown instead of rendering
// it again. Not thread-safe; values, no I/O.
#pragma once

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace ferry::bench {

class StatsTable {
 public:
  // One row of a report: report[section][key] is a summary; the row is left out when absent.
  struct RowSpec {
    const char* section;
    const char* key;
    const char* label;
  };
  // The table of `rows` from a benchmark's JSON report.
  static StatsTable of(const nlohmann::json& report, std::initializer_list<RowSpec> rows);

  explicit StatsTable(std::string unit = "ms") : unit_(std::move(unit)) {}
  // A row; a summary with n == 0 (not measured) renders as dashes.
  void row(std::string label, const nlohmann::json& summary);
  // Columns padded for a terminal; markdown emphasis (**...**) dropped from labels.
  [[nodiscard]] std::string text() const;
  // A GitHub markdown table, three decimals.
  [[nodiscard]] std::string markdown() const;

 private:
  struct Row {
    std::string label;
    std::vector<std::string> cells;  // min, median, p99, max; empty when not measured
  };
  std::string unit_;
  std::vector<Row> rows_;
};

}  // namespace ferry::bench
